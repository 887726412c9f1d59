// Bundle the CLI into one file: ESM start-up pays per module (resolve, read, compile), and `wsreg ls`
// is run often enough that those milliseconds are most of its cost. The `wsreg` bin is a CommonJS
// bundle: `require` hands back builtins as they are, while an ESM `import` of node:fs builds a facade
// of every export (which loads the stream classes). `dist/cli/main.js` becomes the same code as an
// ESM bundle. The library (dist/index.js) stays unbundled tsc output. Figures: docs/performance.md.
import { build } from 'esbuild'

const common = {
  entryPoints: ['dist/cli/main.js'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  // The etcd client is an optional dependency, loaded only for a fleet store: never inline it.
  external: ['etcd3'],
  logLevel: 'warning',
}

await build({
  ...common,
  outfile: 'dist/cli/wsreg.cjs',
  format: 'cjs',
  // `import.meta.url` (used to find package.json) has no CommonJS form: give it the file's own URL.
  define: { 'import.meta.url': '__wsregFileUrl' },
  banner: { js: "'use strict'\nconst __wsregFileUrl = require('node:url').pathToFileURL(__filename).href" },
})
await build({ ...common, outfile: 'dist/cli/main.js', format: 'esm', allowOverwrite: true })
