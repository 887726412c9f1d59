// `npm run bench`: the registry against a careful hand-written raw-fs version (bench/baseline.mjs) and the C + /proc
// floor (bench/floor.c, built with `cc -O2`; skipped with a message when there is no compiler), all in the same run.
// Options: --json <file> (write results), --sizes 100,1000 (subset; 100000 is available but not in the default),
// --quick (fewer repeats).
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { rawList, rawListInfo, rawPrune, rawRead, rawWrite } from './baseline.mjs'
import { OWNERS, buildRegistry, idOf, killAllStarted, makeWorkspaces, startOwners, stopOwners } from './fixtures.mjs'
import { buildFloor, formatTable, pair, runFloor, summarize } from './harness.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
// WSREG_BENCH_DIST points at another build (e.g. of an older commit) to compare against.
const DIST = process.env.WSREG_BENCH_DIST ?? join(ROOT, 'dist')
// The `wsreg` bin as installed (a CommonJS bundle since it starts faster); older builds have only main.js.
const CLI = existsSync(join(DIST, 'cli', 'wsreg.cjs')) ? join(DIST, 'cli', 'wsreg.cjs') : join(DIST, 'cli', 'main.js')
const { Registry } = await import(pathToFileURL(join(DIST, 'index.js')).href)
const { values } = parseArgs({ options: { json: { type: 'string' }, sizes: { type: 'string' }, quick: { type: 'boolean' } } })
const sizes = (values.sizes ?? '100,1000,10000').split(',').map(Number)
const quick = values.quick ? 0.4 : 1
const R = (n) => Math.max(2, Math.round(n * quick))

// Repeats per size: modest at 10,000 so the whole run stays well under 3 minutes on 2 cores.
const REPEATS = {
  100: { list: 40, read: 20, write: 40, prune: 10, info: 30, cli: 15, first: 5 },
  1000: { list: 15, read: 20, write: 30, prune: 5, info: 10, cli: 8, first: 4 },
  10000: { list: 9, read: 20, write: 30, prune: 3, info: 4, cli: 4, first: 3 },
  100000: { list: 5, read: 20, write: 20, prune: 2, info: 2, cli: 2, first: 2 },
}
const READS_PER_SAMPLE = 50

process.on('exit', killAllStarted)
process.on('SIGINT', () => process.exit(130))

const root = realpathSync(mkdtempSync(join(tmpdir(), 'wsreg-bench-')))
const began = Date.now()
const load = loadavg().map((x) => x.toFixed(2)).join(' ')
const rows = []
const log = (text) => process.stderr.write(`${text}\n`)

function check(condition, message) {
  if (!condition) throw new Error(`bench sanity check failed: ${message}`)
}

function childTime(args) {
  const result = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 30 })
  if (result.status !== 0) throw new Error(`${args.join(' ')} failed: ${result.error ?? result.stderr}`)
  return result.stdout
}

// Floor figures of one spawned run: its own timing of the inner loop, checked against the expected count.
function floorSample(args, expect, what) {
  const [{ ms, count }] = runFloor(FLOOR, args)
  check(count === expect, `C floor ${what}: ${count} of ${expect}`)
  return { ms }
}

async function benchSize(n, cwds, liveOwners, deadOwners) {
  const rep = Object.fromEntries(Object.entries(REPEATS[n] ?? REPEATS[1000]).map(([k, v]) => [k, R(v)]))
  const mine = cwds.slice(0, n)
  const dir = join(root, `live-${n}`)
  buildRegistry(dir, mine, liveOwners)
  const registry = new Registry({ dir })
  const add = (op, result, extra = {}) => {
    const row = { n, op, ours: result.ours, base: result.base, floor: result.floor, ratio: result.ours.median / result.base.median, ...extra }
    rows.push(row)
    return row
  }

  check((await registry.list()).length === n && rawList(dir).length === n, `list of ${n} live entries`)
  log(`N=${n}: list`)
  add('list() warm', await pair({
    ours: () => registry.list(),
    base: () => rawList(dir),
    floor: FLOOR && (() => floorSample(['list', dir], n, 'list')),
    repeats: rep.list,
    warmup: 2,
  }), { target: n === 10000 ? '≤ 1.15× floor' : n === 100000 ? '≤ 1.25× floor' : '' })

  log(`N=${n}: first list() in a fresh process`)
  const first = { ours: [], base: [] }
  const growth = { ours: [], base: [] }
  for (let i = 0; i < rep.first; i++) {
    for (const side of i % 2 ? ['base', 'ours'] : ['ours', 'base']) {
      const out = JSON.parse(childTime([join(ROOT, 'bench', 'first-call.mjs'), side, dir]))
      check(out.rows === n, `first-call ${side} saw ${out.rows} rows`)
      first[side].push(out.ms)
      growth[side].push(out.rssGrowthMB)
    }
  }
  add('list() first call', { ours: summarize(first.ours), base: summarize(first.base) })
  const mem = { ours: summarize(growth.ours), base: summarize(growth.base) }
  rows.push({
    n, op: 'list() peak RSS growth', ours: mem.ours, base: mem.base, ratio: mem.ours.median / mem.base.median,
    text: `${mem.ours.median.toFixed(1)} MB (${mem.ours.min.toFixed(1)}–${mem.ours.max.toFixed(1)})`,
    baseText: `${mem.base.median.toFixed(1)} MB (${mem.base.min.toFixed(1)}–${mem.base.max.toFixed(1)})`,
    target: n === 10000 ? '≤ 30 MB' : '',
  })

  log(`N=${n}: listInfo`)
  check((await registry.listInfo()).length === n, 'listInfo rows')
  add('listInfo()', await pair({ ours: () => registry.listInfo(), base: () => rawListInfo(dir), repeats: rep.info, warmup: 2 }))

  log(`N=${n}: read`)
  let k = 0
  const pick = () => {
    const batch = []
    for (let i = 0; i < READS_PER_SAMPLE; i++) batch.push(mine[(k++ * 7919) % n])
    return batch
  }
  let batch = pick()
  const batchFile = join(root, 'read-batch')
  const read = await pair({
    setup: (side) => {
      if (side === 'ours') batch = pick()
      if (side === 'floor') writeFileSync(batchFile, `${batch.join('\n')}\n`)
    },
    ours: async () => { for (const cwd of batch) check(await registry.read(cwd), 'read found') },
    base: () => { for (const cwd of batch) check(rawRead(dir, cwd), 'raw read found') },
    floor: FLOOR && (() => floorSample(['read', dir, batchFile], READS_PER_SAMPLE, 'read')),
    repeats: rep.read,
    warmup: 2,
  })
  for (const side of Object.values(read)) for (const key of ['median', 'min', 'max']) side[key] /= READS_PER_SAMPLE
  add('read(cwd)', read, n === Math.max(...sizes) && n > 100 ? { target: '≤ 1.20× read at 100' } : {})

  log(`N=${n}: write`)
  // The common call, `write({ cwd })`, registers the calling process; the second row writes for another pid.
  for (const [op, pid, cwd] of [['write()', undefined, mine[0]], ['write() other pid', liveOwners[0].pid, mine[1 % n]]]) {
    const name = `${idOf(cwd)}.json`
    await registry.write({ cwd, pid })
    const bytes = readFileSync(join(dir, name))
    add(op, await pair({
      ours: () => registry.write({ cwd, pid }),
      base: () => rawWrite(dir, name, bytes),
      repeats: rep.write,
      warmup: 3,
    }), { target: '≤ 1.30×' })
  }

  log(`N=${n}: prune of ${n} dead entries`)
  const deadDir = join(root, `dead-${n}`)
  const deadRegistry = new Registry({ dir: deadDir })
  let removed = 0
  add(`prune() ${n} dead`, await pair({
    setup: () => buildRegistry(deadDir, mine, deadOwners),
    ours: async () => { removed = (await deadRegistry.prune()).length },
    base: () => { check(rawPrune(deadDir).length === n, 'raw prune removed all') },
    floor: FLOOR && (() => floorSample(['prune', deadDir], n, 'prune')),
    repeats: rep.prune,
    warmup: 0,
  }), { baseLabel: 'no compare-and-delete', target: '≤ 2.5× floor' })
  check(removed === n, `prune removed ${removed} of ${n}`)

  log(`N=${n}: wsreg ls --json`)
  const cliArgs = [CLI, '--dir', dir, 'ls', '--json']
  check(JSON.parse(childTime(cliArgs)).length === n, 'wsreg ls --json rows')
  add('wsreg ls --json (process)', await pair({
    ours: () => childTime(cliArgs),
    base: () => childTime(['-e', '0']),
    repeats: rep.cli,
    warmup: 1,
  }), { baseLabel: 'node -e 0', target: '' })
  rmSync(deadDir, { recursive: true, force: true })
}

let FLOOR = null
try {
  FLOOR = buildFloor(join(ROOT, 'bench', 'floor.c'), root)
  const maxN = Math.max(...sizes)
  log(`fixtures in ${root}: ${maxN} workspace folders, ${OWNERS} live and ${OWNERS} dead owners at every size`)
  const cwds = makeWorkspaces(root, maxN)
  const liveOwners = await startOwners(OWNERS)
  const deadOwners = await startOwners(OWNERS)
  await stopOwners(deadOwners) // identities recorded while alive; now every one of them is gone
  for (const n of sizes) await benchSize(n, cwds, liveOwners, deadOwners)
  await stopOwners(liveOwners)
} finally {
  rmSync(root, { recursive: true, force: true })
}

const readRows = rows.filter((r) => r.op === 'read(cwd)')
const listRows = rows.filter((r) => r.op === 'list() warm')
const seconds = (Date.now() - began) / 1000
let commit = null
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
} catch {}

console.log(`workspace-registry bench — node ${process.version}, ${availableParallelism()} cores, ${process.env.WSREG_BENCH_DIST ? `build ${DIST}` : `commit ${commit ?? '?'}`}`)
console.log('baseline = a careful hand-written raw-fs version (bench/baseline.mjs: one /proc read per pid, no validation; prune: no compare-and-delete;')
console.log('  wsreg ls: `node -e 0`); C floor = bench/floor.c, self-timed in its own process; ratios = ours / that (medians); load at start:', load)
console.log('')
console.log(formatTable(rows))
console.log('')
if (readRows.length > 1) {
  const [small, large] = [readRows[0], readRows[readRows.length - 1]]
  console.log(`read(cwd) at ${large.n} / at ${small.n}: ${(large.ours.median / small.ours.median).toFixed(2)}× (target ≤ 1.20×)`)
}
const perEntry = listRows.map((r) => `${r.n}: ${((r.ours.median * 1000) / r.n).toFixed(1)} µs${r.floor ? ` (floor ${((r.floor.median * 1000) / r.n).toFixed(1)})` : ''}`)
if (perEntry.length > 0) console.log(`list() per entry — ${perEntry.join(', ')}`)
if (!FLOOR) console.log('C floor: skipped (no C compiler)')
console.log(`load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
console.log('watch: figures come from `npm run bench:watch` (bench/watch.mjs)')
console.log(`total ${seconds.toFixed(0)} s`)

if (values.json) {
  writeFileSync(values.json, `${JSON.stringify({ node: process.version, cores: availableParallelism(), commit, date: new Date().toISOString(), load: { start: load, end: loadavg() }, seconds, rows }, null, 2)}\n`)
  log(`results written to ${values.json}`)
}
