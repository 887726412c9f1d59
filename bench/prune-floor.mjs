// `node bench/prune-floor.mjs [--sizes 1000,10000] [--rounds 5]`: registry.prune() of N dead entries (compare-and-delete,
// history, report) against the C floor (bench/prune-floor.c: readdir, open+read+close, one /proc read per pid, unlink;
// no compare-and-delete), the C compare-and-delete (--cad) and the same compare-and-delete through Node's fs calls,
// in alternating rounds on the same fixture rebuilt before every sample. `npm run build` first.
import { execFileSync } from 'node:child_process'
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, readdirSync, realpathSync, renameSync, rmSync, unlinkSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { buildRegistry, killAllStarted, makeWorkspaces, startOwners, stopOwners } from './fixtures.mjs'
import { formatTable, summarize } from './harness.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const DIST = process.env.WSREG_BENCH_DIST ?? join(ROOT, 'dist')
const { Registry } = await import(pathToFileURL(join(DIST, 'index.js')).href)
const { values } = parseArgs({ options: { sizes: { type: 'string' }, rounds: { type: 'string' } } })
const sizes = (values.sizes ?? '1000,10000').split(',').map(Number)
const rounds = Number(values.rounds ?? 7)

process.on('exit', killAllStarted)
const root = realpathSync(mkdtempSync(join(tmpdir(), 'wsreg-prune-floor-')))
const floor = join(root, 'prune-floor')
try {
  execFileSync('cc', ['-O2', '-o', floor, join(ROOT, 'bench', 'prune-floor.c')])
} catch {
  console.log('no C compiler (cc): the C floor cannot be measured here')
  process.exit(0)
}

// The Node floor of the same work: the C compare-and-delete's steps through Node's fs calls, with no validation, no
// history and no report (open, read, close; rename aside; open, read, close of the aside and a byte compare; unlink).
// What prune() costs above it is our own JavaScript; what it costs above the C compare-and-delete is Node's.
const READ = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK
const judgedBuf = Buffer.allocUnsafe(65536)
const asideBuf = Buffer.allocUnsafe(65536)
function nodeCad(dir) {
  const ticks = new Map()
  const alive = (pid, start) => {
    if (!ticks.has(pid)) {
      let now = null
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
        now = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
      } catch {}
      ticks.set(pid, now)
    }
    return ticks.get(pid) === start
  }
  let removed = 0
  let k = 0
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.json')) continue
    const path = `${dir}/${name}`
    const fd = openSync(path, READ)
    const n = readSync(fd, judgedBuf, 0, judgedBuf.length, null)
    closeSync(fd)
    const entry = JSON.parse(judgedBuf.utf8Slice(0, n))
    if (alive(entry.pid, entry.pidStartTime)) continue
    const aside = `${path}.cad-${process.pid}-t1-${++k}-abcdef01`
    renameSync(path, aside)
    const held = openSync(aside, READ)
    const m = readSync(held, asideBuf, 0, n + 1, 0)
    closeSync(held)
    if (m === n && asideBuf.subarray(0, n).equals(judgedBuf.subarray(0, n))) {
      unlinkSync(aside)
      removed++
    }
  }
  return removed
}

const largest = Math.max(...sizes)
const cwds = makeWorkspaces(root, largest)
const dead = await startOwners(Math.max(1, largest / 100))
await stopOwners(dead)
const rows = []
const cpuRows = []
const ms = (usage) => (usage.user + usage.system) / 1000
for (const n of sizes) {
  const dir = join(root, `dead-${n}`)
  const owners = dead.slice(0, Math.max(1, n / 100))
  const registry = new Registry({ dir })
  const wall = { ours: [], floor: [], cad: [], node: [] }
  const cpu = { ours: [], floor: [], cad: [], node: [] }
  const run = {
    ours: async () => {
      buildRegistry(dir, cwds.slice(0, n), owners)
      const cpu0 = process.cpuUsage()
      const start = performance.now()
      const removed = (await registry.prune()).length
      const took = performance.now() - start
      if (removed !== n) throw new Error(`prune removed ${removed} of ${n}`)
      return [took, ms(process.cpuUsage(cpu0))]
    },
    floor: () => runFloor([dir]),
    cad: () => runFloor(['--cad', dir]),
    node: () => {
      buildRegistry(dir, cwds.slice(0, n), owners)
      const cpu0 = process.cpuUsage()
      const start = performance.now()
      const removed = nodeCad(dir)
      const took = performance.now() - start
      if (removed !== n) throw new Error(`node floor removed ${removed} of ${n}`)
      return [took, ms(process.cpuUsage(cpu0))]
    },
  }
  const runFloor = (args) => {
    buildRegistry(dir, cwds.slice(0, n), owners)
    const [removed, ns, cpuMs] = execFileSync(floor, args, { encoding: 'utf8' }).trim().split(' ').map(Number)
    if (removed !== n) throw new Error(`floor removed ${removed} of ${n}`)
    return [ns / 1e6, cpuMs]
  }
  for (const side of Object.keys(run)) await run[side]() // warm-up: JIT, the Judge's first /proc reads
  const sides = Object.keys(run)
  for (let i = 0; i < rounds; i++) {
    for (const side of i % 2 ? [...sides].reverse() : sides) {
      const [took, used] = await run[side]()
      wall[side].push(took)
      cpu[side].push(used)
    }
  }
  for (const [table, samples, what] of [[rows, wall, 'time'], [cpuRows, cpu, 'CPU']]) {
    const o = summarize(samples.ours)
    const f = summarize(samples.floor)
    const c = summarize(samples.cad)
    const j = summarize(samples.node)
    table.push({ n, op: `prune() ${n} dead, ${what}`, ours: o, base: f, ratio: o.median / f.median, target: '≤ 2.50×' })
    table.push({ n, op: `C compare-and-delete, ${what}`, ours: c, base: f, ratio: c.median / f.median, target: 'the price of cad' })
    table.push({ n, op: `Node compare-and-delete, ${what}`, ours: j, base: f, ratio: j.median / f.median, target: "Node's price" })
    table.push({ n, op: `prune() vs C cad, ${what}`, ours: o, base: c, ratio: o.median / c.median })
    table.push({ n, op: `prune() vs Node cad, ${what}`, ours: o, base: j, ratio: o.median / j.median, target: 'our JavaScript' })
  }
}
console.log('baseline: the C floor (readdir, open+read+close, /proc once per pid, unlink); C compare-and-delete adds fstat, rename aside, lstat, unlink of the aside;')
console.log('Node compare-and-delete: our system calls (open+read+close, rename, open+read+close of the aside, unlink) from Node with no validation, history or report')
console.log(formatTable([...rows, ...cpuRows]))
console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
rmSync(root, { recursive: true, force: true })
