// Lint rules, including the architecture's import boundaries (DESIGN.md).
import tseslint from 'typescript-eslint';

const onnxruntime = { name: 'onnxruntime-node', message: 'only src/runtime imports onnxruntime-node' };
const noCli = { group: ['../cli/*', './cli/*'], message: 'nothing imports cli/' };
/** Allows only tensor/ and errors from inside a pure module folder. */
const pureOnly = (folder) => ({
  group: ['../*', '!../tensor', '!../tensor/*', '!../errors.js', `!../${folder}`, `!../${folder}/*`],
  message: `${folder}/ is pure: it imports only tensor/ and errors`,
});

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
    files: ['src/match/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [onnxruntime], patterns: [pureOnly('match')] }] },
  },
  {
    files: ['src/stats/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [onnxruntime], patterns: [pureOnly('stats')] }] },
  },
  {
    files: ['src/tensor/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [onnxruntime], patterns: [{ group: ['../*'], message: 'tensor/ is a leaf' }] }] },
  },
  {
    files: ['src/runtime/**', 'bench/**', 'test/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [noCli] }] },
  },
  {
    files: ['src/cli/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [onnxruntime] }] },
  },
  {
    files: ['src/cli/**', 'bench/**', 'test/**', 'scripts/**'],
    rules: { 'no-console': 'off', 'no-restricted-globals': 'off' },
  },
);
