// Watch benchmark: ready time, memory above an idle process, and event latency at 100 and 10,000
// entries, against the targets of issue 4. Run `npm run bench:watch` (builds first).
// Latency is measured from the moment the entry file is in place (the write returned) to the event.
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Registry, serializeEntry, workspaceId } from '../dist/index.js'

const SIZES = [100, 10_000]
const SAMPLES = 200
const TARGET = { p99Ms: 20, memoryMb: 10, readySlackMs: 50 }

if (process.argv[2] === '--child') await child(process.argv[3], process.argv[4])
else await main()

/** Fill a registry with `count` live entries owned by this process, written directly (no fsync per file). */
async function populate(root, count) {
  const registry = new Registry({ dir: join(root, 'registry') })
  mkdirSync(join(root, 'ws'), { recursive: true })
  const template = await registry.write({ cwd: join(root, 'ws') })
  for (let i = 0; i < count - 1; i++) {
    const cwd = join(root, 'ws', String(i))
    mkdirSync(cwd)
    const entry = { ...template, id: workspaceId(cwd), cwd, name: `ws-${i}` }
    writeFileSync(join(registry.dir, `${entry.id}.json`), serializeEntry(entry), { mode: 0o600 })
  }
  return registry
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
}

async function readyTime(registry) {
  const start = performance.now()
  const watcher = registry.watch()
  await new Promise((resolve) => watcher.once('ready', resolve))
  const elapsed = performance.now() - start
  await watcher.close()
  return elapsed
}

async function latencies(registry, root) {
  const watcher = registry.watch()
  await new Promise((resolve) => watcher.once('ready', resolve))
  const up = []
  const down = []
  const cwd = join(root, 'probe')
  mkdirSync(cwd)
  for (let i = 0; i < SAMPLES; i++) {
    const seen = new Promise((resolve) => watcher.once('up', () => resolve(performance.now())))
    await registry.write({ cwd, name: `probe-${i}` })
    const landed = performance.now()
    up.push((await seen) - landed)
    const gone = new Promise((resolve) => watcher.once('down', () => resolve(performance.now())))
    await registry.remove(cwd)
    const removed = performance.now()
    down.push((await gone) - removed)
  }
  await watcher.close()
  return [...up, ...down]
}

/** RSS of a child that watches `dir` (or, `idle`, only loads the library), after a full GC. */
function memory(mode, dir) {
  const result = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', mode, dir], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(result.stderr)
  return JSON.parse(result.stdout)
}

async function child(mode, dir) {
  const registry = new Registry({ dir })
  let watcher
  if (mode === 'watch') {
    watcher = registry.watch()
    await new Promise((resolve) => watcher.once('ready', resolve))
  } else if (mode === 'list') {
    await registry.list({ prune: false })
  }
  // Settle: let a sweep run, then collect garbage twice so only what the watcher holds remains.
  await new Promise((resolve) => setTimeout(resolve, 2500))
  globalThis.gc()
  globalThis.gc()
  const { rss, heapUsed } = process.memoryUsage()
  process.stdout.write(JSON.stringify({ rss, heapUsed }))
  await watcher?.close()
}

async function main() {
  const rows = []
  for (const size of SIZES) {
    const root = mkdtempSync(join(tmpdir(), 'wsreg-bench-watch-'))
    try {
      const registry = await populate(root, size)
      const listMs = median(await Promise.all([0, 1, 2].map(async () => {
        const start = performance.now()
        await registry.list({ prune: false })
        return performance.now() - start
      })))
      const readyMs = median([await readyTime(registry), await readyTime(registry), await readyTime(registry)])
      const latency = await latencies(registry, root)
      const idle = memory('idle', registry.dir)
      const watching = memory('watch', registry.dir)
      const listing = memory('list', registry.dir)
      rows.push({
        size,
        listMs,
        readyMs,
        p50: percentile(latency, 50),
        p99: percentile(latency, 99),
        rssMb: (watching.rss - idle.rss) / 2 ** 20,
        heapMb: (watching.heapUsed - idle.heapUsed) / 2 ** 20,
        listRssMb: (listing.rss - idle.rss) / 2 ** 20,
      })
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  }
  const ok = (pass) => (pass ? 'ok' : 'MISSED')
  const header = ['entries', 'list()', 'ready', 'ready target', 'latency p50', 'latency p99', 'memory (rss)', 'retained heap', 'rss after one list()']
  const body = rows.map((row) => [
    String(row.size),
    `${row.listMs.toFixed(1)} ms`,
    `${row.readyMs.toFixed(1)} ms`,
    `≤ ${(row.listMs + TARGET.readySlackMs).toFixed(1)} ms ${ok(row.readyMs <= row.listMs + TARGET.readySlackMs)}`,
    `${row.p50.toFixed(2)} ms`,
    `${row.p99.toFixed(2)} ms ${ok(row.p99 <= TARGET.p99Ms)}`,
    `${row.rssMb.toFixed(1)} MB ${ok(row.rssMb <= TARGET.memoryMb)}`,
    `${row.heapMb.toFixed(1)} MB`,
    `${row.listRssMb.toFixed(1)} MB`,
  ])
  const widths = header.map((cell, i) => Math.max(cell.length, ...body.map((row) => row[i].length)))
  for (const row of [header, ...body]) console.log(row.map((cell, i) => cell.padEnd(widths[i])).join('  '))
  console.log(`\ntargets: latency p99 ≤ ${TARGET.p99Ms} ms; memory ≤ ${TARGET.memoryMb} MB above an idle process; ready ≤ list() + ${TARGET.readySlackMs} ms`)
  console.log(`(${SAMPLES} up and ${SAMPLES} down events per size; memory is RSS after GC, watcher vs. a process that only loaded the library;`)
  console.log(' retained heap is what the watcher holds; the last column is the same RSS measure for a process that ran one list() and nothing else)')
}
