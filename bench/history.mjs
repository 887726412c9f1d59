// `node bench/history.mjs`: the cost of one history append against a raw fs.appendFileSync of the same line, and
// what recording adds to a prune of many dead entries (WSREG_BENCH_BASE=<dist without history> to compare).
import { appendFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const { appendHistory } = await import(pathToFileURL(join(ROOT, 'dist', 'history.js')).href)
const root = realpathSync(mkdtempSync(join(tmpdir(), 'wsreg-bench-history-')))
const N = 20_000
const input = { id: '0123456789abcdef', cwd: '/home/dan/projects/some-workspace', name: 'some-workspace', pid: 12345, event: 'pruned', reason: 'exited' }
const line = `${JSON.stringify({ at: new Date().toISOString(), ...input, by: process.pid })}\n`

function perCall(label, run) {
  const samples = []
  for (let round = 0; round < 5; round++) {
    const dir = join(root, `${label}-${round}`)
    mkdirSync(dir, { mode: 0o700 })
    const start = process.hrtime.bigint()
    for (let i = 0; i < N; i++) run(dir)
    samples.push(Number(process.hrtime.bigint() - start) / 1000 / N)
  }
  samples.sort((a, b) => a - b)
  console.log(`${label.padEnd(28)} median ${samples[2].toFixed(2)} µs/append (min ${samples[0].toFixed(2)}, max ${samples[4].toFixed(2)})`)
}

perCall('appendFileSync (baseline)', (dir) => appendFileSync(join(dir, '.history'), line, { mode: 0o600 }))
perCall('appendHistory', (dir) => appendHistory(dir, input))

// A prune of `count` dead entries, with this build and (if given) a base build.
async function pruneMs(dist, count) {
  const { Registry, workspaceId } = await import(pathToFileURL(join(dist, 'index.js')).href)
  const times = []
  for (let round = 0; round < 5; round++) {
    const dir = join(root, `prune-${round}-${Math.random().toString(16).slice(2)}`)
    mkdirSync(dir, { mode: 0o700 })
    for (let i = 0; i < count; i++) {
      const cwd = `/nonexistent/ws-${i}`
      const id = workspaceId(cwd)
      writeFileSync(join(dir, `${id}.json`), `${JSON.stringify({ version: 1, id, cwd, name: `ws-${i}`, pid: 0, pidStartTime: null, bootId: null, host: hostname(), startedAt: new Date().toISOString(), updatedAt: new Date().toISOString() }, null, 2)}\n`, { mode: 0o600 })
    }
    const start = performance.now()
    const report = await new Registry({ dir }).prune()
    times.push(performance.now() - start)
    if (report.length !== count) throw new Error(`pruned ${report.length} of ${count}`)
  }
  times.sort((a, b) => a - b)
  return times[2]
}
const count = 1000
const mine = await pruneMs(join(ROOT, 'dist'), count)
console.log(`prune of ${count} gone entries      ${mine.toFixed(1)} ms (this build, with history)`)
if (process.env.WSREG_BENCH_BASE) {
  const base = await pruneMs(process.env.WSREG_BENCH_BASE, count)
  console.log(`prune of ${count} gone entries      ${base.toFixed(1)} ms (${process.env.WSREG_BENCH_BASE}, no history)`)
}
rmSync(root, { recursive: true, force: true })
