// Lint rules. The layers' import boundaries are docs/ARCHITECTURE.md's table, checked by
// test/architecture.test.ts; here only what holds for bench/, test/ and scripts/ as well.
import tseslint from 'typescript-eslint';

const onnxruntime = { name: 'onnxruntime-node', message: 'only src/runtime imports onnxruntime-node' };
const noCli = { group: ['../cli/*', './cli/*'], message: 'nothing imports cli/' };

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'scratch/**', '.scratch-*/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-restricted-imports': ['error', { paths: [onnxruntime], patterns: [noCli] }],
      'no-console': 'error',
      'no-restricted-globals': ['error', { name: 'process', message: 'process is for src/cli only' }],
    },
  },
  {
    files: ['src/runtime/**', 'bench/**', 'test/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [noCli] }] },
  },
  {
    files: ['src/cli/**', 'bench/**', 'test/**', 'scripts/**'],
    rules: { 'no-console': 'off', 'no-restricted-globals': 'off' },
  },
);
