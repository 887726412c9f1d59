// Bundle the CLI into one file: ESM start-up pays per module (resolve, read, compile), and `wsreg ls`
// is run often enough that those milliseconds are most of its cost. The library (dist/index.js) stays unbundled.
// Measured in docs/performance.md; without esbuild installed the unbundled tsc output still works.
import { build } from 'esbuild'

await build({
  entryPoints: ['dist/cli/main.js'],
  outfile: 'dist/cli/main.js',
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
})
