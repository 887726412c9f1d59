// A sample workspace process for the tour: serves HTTP on a loopback port and claims its entry (removed
// again when it exits); the claim is exclusive, so a double start is refused with the running one's url.
import { createServer } from 'node:http'
import { basename } from 'node:path'
import { Registry } from '../dist/index.js'

const [dir, cwd] = process.argv.slice(2)
const registry = new Registry({ dir })
const server = createServer((_, res) => res.end(`hello from ${basename(cwd)}\n`))
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
try {
  // Exclusive: the claim holds the workspace lock for this process's life, so a second start is refused with the first one's entry.
  await registry.claim({ cwd, url: `http://127.0.0.1:${server.address().port}/`, meta: { demo: true } })
} catch (error) {
  if (error.code !== 'E_LOCKED') throw error
  const { pid, entry } = error.details
  process.stdout.write(`refused: ${basename(cwd)} is already running${pid ? ` (pid ${pid}${entry?.url ? ` at ${entry.url}` : ''})` : ''}\n`)
  process.exit(3)
}
process.stdout.write('ready\n')
