// Lint rules, including the architecture's import boundaries (DESIGN.md).
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**'] },
  ...tseslint.configs.recommended,
  {
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            { target: './src/tensor', from: './src', except: ['./tensor'], message: 'tensor/ is a leaf' },
            { target: './src/errors.ts', from: './src', except: ['./errors.ts'], message: 'errors is a leaf' },
            { target: './src/match', from: './src', except: ['./match', './tensor', './errors.ts'], message: 'match/ is pure: tensor/ and errors only' },
            { target: './src/stats', from: './src', except: ['./stats', './tensor', './errors.ts'], message: 'stats/ imports only tensor/ and errors' },
            {
              target: ['tensor', 'onnx', 'graph', 'runtime', 'stats', 'match', 'merge', 'data', 'zoo', 'train', 'eval', 'report'].map((d) => `./src/${d}`),
              from: './src/cli',
              message: 'nothing imports cli/',
            },
          ],
        },
      ],
      'no-restricted-imports': [
        'error',
        { paths: [{ name: 'onnxruntime-node', message: 'only src/runtime imports onnxruntime-node' }] },
      ],
      'no-console': 'error',
      'no-restricted-globals': ['error', { name: 'process', message: 'process is for src/cli only' }],
    },
  },
  {
    files: ['src/runtime/**', 'bench/**', 'test/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['src/cli/**', 'bench/**', 'test/**', 'scripts/**'],
    rules: { 'no-console': 'off', 'no-restricted-globals': 'off' },
  },
);
