// `npm run bench:startup`: `wsreg ls --json` at 100 entries as a whole process (spawn included) against a minimal
// dependency-free single-file ls doing the same judgement (bench/fixtures/min-ls.cjs) and `node -e 0`, in alternating
// rounds, and `wsreg --version` (the bin loaded, its arguments parsed, no registry touched: what start-up alone costs,
// so the table shows how much of the gap is loading the CLI and how much is listing). Wall time: median (min–max);
// CPU: the children's user+sys per run (from /proc/self/stat, summed per side).
// Options: --rounds N (default 30), --entries N (default 100), --bin <file> (another wsreg bin to measure),
// --instructions (also count each side's user-space instructions once under valgrind: slow, ~10 s a run, but the same
// on a loaded machine, where wall and CPU times of 100-200 ms processes move by 20% from run to run).
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { buildRegistry, killAllStarted, makeWorkspaces, startOwners, stopOwners } from './fixtures.mjs'
import { formatTable, summarize } from './harness.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const { values } = parseArgs({ options: { rounds: { type: 'string' }, entries: { type: 'string' }, bin: { type: 'string' }, instructions: { type: 'boolean' } } })
const rounds = Number(values.rounds ?? 30)
const entries = Number(values.entries ?? 100)
const bin = values.bin ?? join(ROOT, 'dist', 'cli', 'wsreg.cjs')

process.on('exit', killAllStarted)
const root = realpathSync(mkdtempSync(join(tmpdir(), 'wsreg-startup-')))
const owners = await startOwners(Math.max(1, entries / 100))
const dir = join(root, 'reg')
buildRegistry(dir, makeWorkspaces(root, entries), owners)

const sides = {
  ours: [bin, '--dir', dir, 'ls', '--json'],
  min: [join(ROOT, 'bench', 'fixtures', 'min-ls.cjs'), dir],
  node: ['-e', '0'],
  version: [bin, '--version'],
}
// Children's CPU (utime + stime of waited-for children, fields 16 and 17), in ms.
const TICK_MS = 10
function childrenCpu() {
  const text = readFileSync('/proc/self/stat', 'latin1')
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[13]) + Number(fields[14])) * TICK_MS
}
function run(args) {
  const start = performance.now()
  const result = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  const took = performance.now() - start
  if (result.status !== 0) throw new Error(`${args.join(' ')} failed: ${result.stderr}`)
  return { took, out: result.stdout }
}

const ours = run(sides.ours).out
const min = run(sides.min).out
if (ours !== min) throw new Error('the minimal ls printed something else than wsreg ls --json: the comparison would not be fair')
if (JSON.parse(ours).length !== entries) throw new Error(`wsreg ls --json listed ${JSON.parse(ours).length} of ${entries}`)

const wall = { ours: [], min: [], node: [], version: [] }
const cpu = { ours: 0, min: 0, node: 0, version: 0 }
const names = Object.keys(sides)
for (let i = 0; i < rounds; i++) {
  // Rotate the order so no side always runs right after another one.
  const order = names.map((_, k) => names[(i + k) % names.length])
  for (const side of order) {
    const before = childrenCpu()
    wall[side].push(run(sides[side]).took)
    cpu[side] += childrenCpu() - before
  }
}
const s = Object.fromEntries(names.map((side) => [side, summarize(wall[side])]))
const perRun = (side) => ({ median: cpu[side] / rounds, min: cpu[side] / rounds, max: cpu[side] / rounds })
const rows = [
  { n: entries, op: 'wsreg ls --json vs min ls', ours: s.ours, base: s.min, ratio: s.ours.median / s.min.median, target: '≤ 1.05×' },
  { n: entries, op: 'wsreg ls --json vs node -e 0', ours: s.ours, base: s.node, ratio: s.ours.median / s.node.median },
  { n: entries, op: 'min ls vs node -e 0', ours: s.min, base: s.node, ratio: s.min.median / s.node.median },
  { n: entries, op: 'wsreg --version vs min ls', ours: s.version, base: s.min, ratio: s.version.median / s.min.median },
  { n: entries, op: 'CPU per run: ours vs min ls', text: `${perRun('ours').median.toFixed(1)} ms`, baseText: `${perRun('min').median.toFixed(1)} ms`, ratio: cpu.ours / cpu.min, target: '≤ 1.05×' },
  { n: entries, op: 'CPU per run: node -e 0', text: `${perRun('node').median.toFixed(1)} ms`, baseText: '-' },
]
if (values.instructions) {
  // Instructions executed in user space (cachegrind's "I refs"), all threads; two runs per side, the lower kept.
  const count = (args) => {
    const result = spawnSync('valgrind', ['--tool=cachegrind', '--cache-sim=no', '--cachegrind-out-file=/dev/null', process.execPath, ...args], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] })
    const match = /I\s+refs:\s+([\d,]+)/.exec(result.stderr ?? '')
    return match ? Number(match[1].replaceAll(',', '')) : Number.NaN
  }
  const ir = Object.fromEntries(names.map((side) => [side, Math.min(count(sides[side]), count(sides[side]))]))
  if (Number.isNaN(ir.ours)) console.log('(no valgrind: instructions not counted)')
  else {
    const mega = (side) => `${(ir[side] / 1e6).toFixed(0)} M`
    rows.push({ n: entries, op: 'instructions: ours vs min ls', text: mega('ours'), baseText: mega('min'), ratio: ir.ours / ir.min, target: '≤ 1.05×' })
    rows.push({ n: entries, op: 'instructions: min ls vs node -e 0', text: mega('min'), baseText: mega('node'), ratio: ir.min / ir.node })
    rows.push({ n: entries, op: 'instructions: wsreg --version vs min ls', text: mega('version'), baseText: mega('min'), ratio: ir.version / ir.min })
  }
}
console.log(formatTable(rows))
console.log(`${rounds} alternating rounds; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; node ${process.version}`)
await stopOwners(owners)
rmSync(root, { recursive: true, force: true })
