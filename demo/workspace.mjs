// A sample workspace process for the tour: refuses a double start with the workspace lock,
// serves HTTP on a loopback port, and claims its entry (removed again when it exits).
import { createServer } from 'node:http'
import { basename } from 'node:path'
import { Registry } from '../dist/index.js'

const [dir, cwd] = process.argv.slice(2)
const registry = new Registry({ dir })
try {
  await registry.lock(cwd)
} catch (error) {
  if (error.code !== 'E_LOCKED') throw error
  const holder = error.details.holder
  process.stdout.write(`refused: ${basename(cwd)} is already running${holder ? ` (pid ${holder.pid} since ${holder.since})` : ''}\n`)
  process.exit(3)
}
const server = createServer((_, res) => res.end(`hello from ${basename(cwd)}\n`))
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
await registry.claim({ cwd, url: `http://127.0.0.1:${server.address().port}/`, meta: { demo: true } })
process.stdout.write('ready\n')
