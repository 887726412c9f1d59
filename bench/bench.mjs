// `npm run bench`: the registry against the simplest raw-fs code, measured in the same run.
// Options: --json <file> (write results), --sizes 100,1000 (subset), --quick (fewer repeats).
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { rawList, rawListInfo, rawPrune, rawRead, rawWrite } from './baseline.mjs'
import { buildRegistry, idOf, killAllStarted, makeWorkspaces, startOwners, stopOwners } from './fixtures.mjs'
import { formatTable, pair, summarize } from './harness.mjs'

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
  10000: { list: 7, read: 20, write: 30, prune: 3, info: 4, cli: 4, first: 3 },
}
const READS_PER_SAMPLE = 50

process.on('exit', killAllStarted)
process.on('SIGINT', () => process.exit(130))

const root = realpathSync(mkdtempSync(join(tmpdir(), 'wsreg-bench-')))
const began = Date.now()
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

async function benchSize(n, cwds, liveOwners, deadOwners) {
  const rep = Object.fromEntries(Object.entries(REPEATS[n] ?? REPEATS[1000]).map(([k, v]) => [k, R(v)]))
  const owners = liveOwners.slice(0, Math.max(1, n / 100))
  const dead = deadOwners.slice(0, Math.max(1, n / 100))
  const mine = cwds.slice(0, n)
  const dir = join(root, `live-${n}`)
  buildRegistry(dir, mine, owners)
  const registry = new Registry({ dir })
  const add = (op, result, extra = {}) => {
    const row = { n, op, ours: result.ours, base: result.base, ratio: result.ours.median / result.base.median, ...extra }
    rows.push(row)
    return row
  }

  check((await registry.list()).length === n && rawList(dir).length === n, `list of ${n} live entries`)
  log(`N=${n}: list`)
  add('list() warm', await pair({ ours: () => registry.list(), base: () => rawList(dir), repeats: rep.list, warmup: 2 }),
    n === 10000 ? { target: '≤ 1.20×; stretch < 120 ms' } : {})

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
  const read = await pair({
    setup: (side) => { if (side === 'ours') batch = pick() },
    ours: async () => { for (const cwd of batch) check(await registry.read(cwd), 'read found') },
    base: () => { for (const cwd of batch) check(rawRead(dir, cwd), 'raw read found') },
    repeats: rep.read,
    warmup: 2,
  })
  for (const side of ['ours', 'base']) for (const key of ['median', 'min', 'max']) read[side][key] /= READS_PER_SAMPLE
  add('read(cwd)', read, n === 10000 ? { target: '≤ 2× read at 100' } : {})

  log(`N=${n}: write`)
  // The common call, `write({ cwd })`, registers the calling process; the second row writes for another pid.
  for (const [op, pid, cwd] of [['write()', undefined, mine[0]], ['write() other pid', owners[0].pid, mine[1 % n]]]) {
    const name = `${idOf(cwd)}.json`
    await registry.write({ cwd, pid })
    const bytes = readFileSync(join(dir, name))
    add(op, await pair({
      ours: () => registry.write({ cwd, pid }),
      base: () => rawWrite(dir, name, bytes),
      repeats: rep.write,
      warmup: 3,
    }), { target: '≤ 1.50×' })
  }

  log(`N=${n}: prune of ${n} dead entries`)
  const deadDir = join(root, `dead-${n}`)
  const deadRegistry = new Registry({ dir: deadDir })
  let removed = 0
  add(`prune() ${n} dead`, await pair({
    setup: () => buildRegistry(deadDir, mine, dead),
    ours: async () => { removed = (await deadRegistry.prune()).length },
    base: () => { check(rawPrune(deadDir).length === n, 'raw prune removed all') },
    repeats: rep.prune,
    warmup: 0,
  }))
  check(removed === n, `prune removed ${removed} of ${n}`)

  log(`N=${n}: wsreg ls --json`)
  const cliArgs = [CLI, '--dir', dir, 'ls', '--json']
  check(JSON.parse(childTime(cliArgs)).length === n, 'wsreg ls --json rows')
  add('wsreg ls --json (process)', await pair({
    ours: () => childTime(cliArgs),
    base: () => childTime(['-e', '0']),
    repeats: rep.cli,
    warmup: 1,
  }), { baseLabel: 'node -e 0', target: n === 100 ? '≤ 1.30× node -e 0' : '' })
  rmSync(deadDir, { recursive: true, force: true })
}

try {
  const maxN = Math.max(...sizes)
  log(`fixtures in ${root}: ${maxN} workspace folders, ${Math.max(1, maxN / 100)} live and as many dead owners`)
  const cwds = makeWorkspaces(root, maxN)
  const liveOwners = await startOwners(Math.max(1, maxN / 100))
  const deadOwners = await startOwners(Math.max(1, maxN / 100))
  await stopOwners(deadOwners) // identities recorded while alive; now every one of them is gone
  for (const n of sizes) await benchSize(n, cwds, liveOwners, deadOwners)
  await stopOwners(liveOwners)
} finally {
  rmSync(root, { recursive: true, force: true })
}

const read100 = rows.find((r) => r.n === 100 && r.op === 'read(cwd)')
const read10k = rows.find((r) => r.n === 10000 && r.op === 'read(cwd)')
const seconds = (Date.now() - began) / 1000
let commit = null
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
} catch {}

console.log(`workspace-registry bench — node ${process.version}, ${availableParallelism()} cores, ${process.env.WSREG_BENCH_DIST ? `build ${DIST}` : `commit ${commit ?? '?'}`}`)
console.log('baseline = the same work with raw fs calls, same run (wsreg ls: `node -e 0`); ratio = ours / baseline (medians)')
console.log('')
console.log(formatTable(rows))
console.log('')
if (read100 && read10k) console.log(`read(cwd) at 10,000 / at 100: ${(read10k.ours.median / read100.ours.median).toFixed(2)}× (target ≤ 2×)`)
console.log('watch: figures come from `npm run bench:watch` (bench/watch.mjs)')
console.log(`total ${seconds.toFixed(0)} s`)

if (values.json) {
  writeFileSync(values.json, `${JSON.stringify({ node: process.version, cores: availableParallelism(), commit, date: new Date().toISOString(), seconds, rows }, null, 2)}\n`)
  log(`results written to ${values.json}`)
}
