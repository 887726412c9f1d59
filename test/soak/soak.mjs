#!/usr/bin/env node
// Chaos soak: workers do random registry operations on one shared folder while a killer SIGKILLs them at
// random and restarts them, and a watcher in this process records events. Invariants are checked while it
// runs and at the end; counts are printed. Exit 0 only when no invariant was broken.
//
//   node test/soak/soak.mjs [--seconds N] [--workers N] [--workspaces N] [--kill-every MS] [--json] [--keep]
//   (env SOAK_SECONDS sets the default duration; `npm run soak` builds first, default 600 s)
//
// Invariants:
//   torn         every raw read of an <id>.json parses or is ENOENT; no list/prune ever sees a corrupt file
//   deletions    every entry that left the folder was the deleter's own, an idle row, overwritten by a newer
//                write, or owned by a process that had ended (by the parent's record and by /proc at that moment)
//   lock         never two holders of one workspace lock (enter/leave marks, kills marked before the signal)
//   watcher      every `down` matches the one `up` before it (same owner), and every `up` gets its `down` at the end
//   final        after the workers pause, half are SIGKILLed and one prune runs, the folder holds exactly the idle
//                rows and the entries of still-running workers; after the rest exit and prune runs again, only
//                the idle rows; after temp files of killed writers are made a minute old, prune sweeps them all,
//                and no lock side file or lock remains
import { fork } from 'node:child_process'
import { appendFileSync, closeSync, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, realpathSync, rmSync, utimesSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { procState, traceDeletions } from './trace.mjs'

const WORKER = fileURLToPath(new URL('../fixtures/soak-worker.mjs', import.meta.url))
const ENTRY = /^([0-9a-f]{16})\.json$/

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: process.env.SOAK_SECONDS ?? '600' },
    workers: { type: 'string', default: '16' },
    workspaces: { type: 'string', default: '50' },
    'lock-targets': { type: 'string', default: '5' },
    'kill-every': { type: 'string', default: '200' },
    pace: { type: 'string', default: '4' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
})
const seconds = Number(args.seconds)
const workerCount = Number(args.workers)
const workspaceCount = Number(args.workspaces)
const killEveryMs = Number(args['kill-every'])

const root = realpathSync(mkdtempSync(join(tmpdir(), 'wsreg-soak-')))
const dir = join(root, 'registry')
const logs = join(root, 'logs')
mkdirSync(logs)
const deletionLog = join(logs, 'deletions.ndjson')
const lockLog = join(logs, 'locks.log')
const violationLog = join(logs, 'violations.ndjson')
for (const file of [deletionLog, lockLog, violationLog]) writeFileSync(file, '')
for (let index = 0; index < workspaceCount; index++) mkdirSync(join(root, `ws-${String(index).padStart(2, '0')}`))

let parentOp = 'start'
traceDeletions(deletionLog, () => parentOp)
const { Registry } = await import('../../dist/index.js')
const registry = new Registry({ dir })

const violations = []
const counts = { operations: {}, kills: 0, spawns: 0, deletions: {}, events: {}, downReasons: {}, final: {} }
const bump = (table, key, by = 1) => (table[key] = (table[key] ?? 0) + by)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const violate = (kind, detail) => violations.push({ kind, detail })
const ownerKey = (pid, startTime) => `${pid}:${startTime}`

// --- processes ---------------------------------------------------------------------------------------------
/** Every worker that ever reported in, by pid:startTime; `end` is when we signalled or dismissed it. */
const lifetimes = new Map()
const slots = []
let running = true

function spawnWorker(slot) {
  const child = fork(WORKER, [dir, root, String(workspaceCount), args['lock-targets'], logs, args.pace], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  })
  counts.spawns++
  const worker = { child, key: null, pid: child.pid, ready: false, paused: false, killed: false, dismissed: false, stderr: '' }
  slots[slot] = worker
  child.stderr.setEncoding('utf8').on('data', (text) => (worker.stderr = (worker.stderr + text).slice(-4000)))
  child.on('message', (message) => {
    if (message.ready) {
      worker.key = ownerKey(message.pid, message.startTime)
      lifetimes.set(worker.key, { end: null })
      worker.ready = true
    } else if (message.counts) {
      for (const [name, n] of Object.entries(message.counts)) bump(counts.operations, name, n)
    } else if (message.paused) {
      worker.paused = true
    }
  })
  child.on('error', (error) => violate('worker-error', { pid: child.pid, message: error.message }))
  child.on('exit', (code, signal) => {
    worker.exited = true
    if (!worker.killed && !(worker.dismissed && code === 0)) {
      violate('worker-crash', { pid: child.pid, code, signal, stderr: worker.stderr })
    }
    if (running && slots[slot] === worker) spawnWorker(slot)
  })
}

/** SIGKILL a worker; marked in the lock log and in its lifetime *before* the signal, so nothing it held can be freed earlier. */
function kill(worker) {
  worker.killed = true
  appendFileSync(lockLog, `kill - ${worker.pid}\n`)
  const life = worker.key && lifetimes.get(worker.key)
  if (life) life.end = Date.now()
  worker.child.kill('SIGKILL')
  counts.kills++
}

async function until(condition, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`soak: timed out waiting for ${what}`)
    await sleep(10)
  }
}

// --- watcher ---------------------------------------------------------------------------------------------
/** Per workspace id: the owner key of the last `up` not yet matched by a `down`. */
const upOwner = new Map()
const watcher = registry.watch({ intervalMs: 500 })
watcher.on('up', (event) => {
  bump(counts.events, 'up')
  upOwner.set(event.entry.id, ownerKey(event.entry.pid, event.entry.pidStartTime))
})
watcher.on('down', (event) => {
  bump(counts.events, 'down')
  bump(counts.downReasons, event.reason)
  const key = ownerKey(event.entry.pid, event.entry.pidStartTime)
  if (upOwner.get(event.entry.id) !== key) {
    violate('unmatched-down', { id: event.entry.id, owner: key, up: upOwner.get(event.entry.id) ?? null, reason: event.reason })
  }
  upOwner.delete(event.entry.id)
})
watcher.on('change', () => bump(counts.events, 'change'))
watcher.on('error', (error) => {
  bump(counts.events, 'error')
  violate('watcher-error', { message: error.message })
})
await new Promise((resolve) => watcher.once('ready', resolve))
bump(counts.events, 'ready')

// --- checks over the logs, run while the soak runs and at the end ------------------------------------------
const offsets = new Map()
/** Complete lines appended to `file` since the last call (the logs grow for minutes; never re-read them whole). */
function newLines(file) {
  const from = offsets.get(file) ?? 0
  const fd = openSync(file, 'r')
  try {
    const size = fstatSync(fd).size
    const buffer = Buffer.alloc(size - from)
    readSync(fd, buffer, 0, buffer.length, from)
    const end = buffer.lastIndexOf(10) + 1
    offsets.set(file, from + end)
    return buffer.subarray(0, end).toString('utf8').split('\n').filter(Boolean)
  } finally {
    closeSync(fd)
  }
}

/** Judge one deletion record by its evidence (/proc at that moment) and by our record of who had ended when. */
function checkDeletion(record) {
  let verdict
  if (!record.parsed) {
    verdict = 'unparsable'
    violate('deleted-unparsable', record)
  } else if (record.pid === 0) verdict = 'idle'
  else if (record.kind === 'superseded') verdict = 'superseded'
  else if (record.pid === record.deleter && record.pidStartTime === record.deleterStart) verdict = 'own'
  else {
    const now = record.ownerNow
    const aliveThen = now && now.state !== 'gone' && now.state !== 'Z' && now.startTime === record.pidStartTime
    const life = lifetimes.get(ownerKey(record.pid, record.pidStartTime))
    if (aliveThen) violate('live-entry-deleted', { ...record, evidence: '/proc showed the owner running' })
    else if (life && (life.end === null || life.end > record.t)) {
      violate('live-entry-deleted', { ...record, evidence: `the owner had not been signalled or dismissed (end ${life.end})` })
    }
    verdict = 'owner-ended'
  }
  bump(counts.deletions, `${record.op}/${record.kind === 'swept-aside' ? 'swept-aside' : verdict}`)
}

/** Replay lock marks per workspace: an `enter` while another not-yet-killed holder is inside is two holders. */
const lockState = new Map()
const doomed = new Set()
function checkLockLine(line) {
  const [mark, id, pid] = line.split(' ')
  if (mark === 'kill') {
    doomed.add(pid)
    for (const [lockId, holder] of lockState) if (holder === pid) lockState.delete(lockId)
    return
  }
  const holder = lockState.get(id)
  if (mark === 'enter') {
    bump(counts.final, 'lock-entries')
    if (holder !== undefined) violate('two-lock-holders', { id, holder, entering: pid })
    // A doomed worker may still win between its kill mark and the signal landing; it dies holding the lock.
    if (!doomed.has(pid)) lockState.set(id, pid)
  } else if (mark === 'leave') {
    if (holder === pid) lockState.delete(id)
    else if (!doomed.has(pid)) violate('lock-leave-without-enter', { id, pid })
  }
}

function checkLogs() {
  for (const line of newLines(deletionLog)) checkDeletion(JSON.parse(line))
  for (const line of newLines(lockLog)) checkLockLine(line)
  for (const line of newLines(violationLog)) {
    const record = JSON.parse(line)
    violate(record.kind, record)
  }
}

// --- the run -------------------------------------------------------------------------------------------------
const startedAt = Date.now()
for (let slot = 0; slot < workerCount; slot++) spawnWorker(slot)
const deadline = startedAt + seconds * 1000
let nextCheck = Date.now() + 1000
let reported = 0
while (Date.now() < deadline) {
  await sleep(Math.min(killEveryMs * (0.5 + Math.random()), Math.max(0, deadline - Date.now())))
  const victims = slots.filter((worker) => worker.ready && !worker.killed)
  if (victims.length > 0) kill(victims[Math.floor(Math.random() * victims.length)])
  if (Date.now() >= nextCheck) {
    checkLogs()
    nextCheck = Date.now() + 1000
    if (violations.length > reported) {
      for (const item of violations.slice(reported)) process.stderr.write(`soak: VIOLATION ${JSON.stringify(item).slice(0, 2000)}\n`)
      reported = violations.length
    }
  }
}

// --- the end: pause everyone, then check the folder in three steps -----------------------------------------
running = false
await until(() => slots.every((worker) => worker.ready || worker.exited), 30_000, 'restarted workers to report in')
const alive = slots.filter((worker) => !worker.killed && !worker.exited)
for (const worker of alive) worker.child.send('stop')
await until(() => alive.every((worker) => worker.paused || worker.exited), 60_000, 'workers to pause')
await until(() => slots.every((worker) => worker.exited || !worker.killed), 10_000, 'killed workers to exit')

const readFolder = () => {
  const entries = new Map()
  const others = []
  for (const name of readdirSync(dir)) {
    const match = ENTRY.exec(name)
    if (/^\.history(\.1)?$/.test(name)) {
      // The record of every end: SIGKILL cannot cut one write(2) short, so every line must parse.
      for (const line of readFileSync(join(dir, name), 'utf8').split('\n').filter(Boolean)) {
        try {
          JSON.parse(line)
        } catch {
          violate('torn-history-line', { name, line: line.slice(0, 200) })
        }
      }
      continue
    }
    if (!match) {
      others.push(name)
      continue
    }
    const text = readFileSync(join(dir, name), 'utf8')
    try {
      entries.set(match[1], { text, entry: JSON.parse(text) })
    } catch {
      violate('torn-read', { name, text: text.slice(0, 200) })
    }
  }
  return { entries, others }
}
const snapshot = readFolder().entries
counts.final['entries-at-pause'] = snapshot.size
counts.final['idle-at-pause'] = [...snapshot.values()].filter(({ entry }) => entry.pid === 0).length

// Step 1: SIGKILL half of the paused workers, prune once: exactly the idle rows and the survivors' entries remain.
const paused = alive.filter((worker) => !worker.exited)
const victims = paused.filter((_, index) => index % 2 === 0)
const survivors = paused.filter((_, index) => index % 2 === 1)
for (const worker of victims) kill(worker)
await until(() => victims.every((worker) => worker.exited), 10_000, 'victims to exit')
const survivorKeys = new Set(survivors.map((worker) => worker.key))
const expectAfter = (keep) => new Map([...snapshot].filter(([, { entry }]) => keep(entry)))
const compare = (step, expected) => {
  const { entries } = readFolder()
  for (const [id, { text }] of expected) {
    if (entries.get(id)?.text !== text) violate('final-missing', { step, id, expected: text, found: entries.get(id)?.text ?? null })
  }
  for (const [id, { text }] of entries) if (!expected.has(id)) violate('final-extra', { step, id, found: text })
  return entries.size
}
parentOp = 'final-prune'
const prune1 = await registry.prune()
bump(counts.final, 'prune-1-removed', prune1.filter((item) => item.reason !== 'restored').length)
// An aside left by a deleter killed mid compare-and-delete whose entry was still current is put back, not
// swept: that entry is as expected as the ones in the snapshot (it was only hidden when the snapshot was taken).
for (const item of prune1.filter((candidate) => candidate.reason === 'restored')) {
  const text = readFileSync(item.path, 'utf8')
  snapshot.set(item.id, { text, entry: JSON.parse(text) })
  bump(counts.final, 'restored-asides')
}
counts.final['entries-after-prune-1'] = compare('after SIGKILL of half and one prune', expectAfter(
  (entry) => entry.pid === 0 || survivorKeys.has(ownerKey(entry.pid, entry.pidStartTime)),
))

// Step 2: dismiss the survivors (claims go with them), prune again: only the idle rows remain.
for (const worker of survivors) {
  worker.dismissed = true
  const life = lifetimes.get(worker.key)
  if (life) life.end = Date.now()
  worker.child.send('exit')
}
await until(() => survivors.every((worker) => worker.exited), 10_000, 'survivors to exit')
bump(counts.final, 'prune-2-removed', (await registry.prune()).length)
counts.final['entries-after-prune-2'] = compare('after all exited and a second prune', expectAfter((entry) => entry.pid === 0))

// Step 3: what SIGKILLed writers left mid-write. An aside file (`.cad-`) holding the entry of a process that was
// still running when the deleter died would be a live entry lost; then age every leftover by two minutes (what
// waiting a minute would do) and prune must sweep all of it, lock side files included.
const leftovers = readFolder().others.filter((name) => name !== '.quarantine')
for (const name of leftovers) {
  const kind = /\.json\.cad-/.test(name) ? 'aside' : /\.json\./.test(name) ? 'temp' : /\.lock$/.test(name) ? 'lock-file' : /\.lock\./.test(name) ? 'lock-temp' : 'other'
  bump(counts.final, `leftover-${kind}`)
  if (kind === 'other') violate('unexpected-file', { name })
  if (kind === 'lock-file') violate('stale-lock-file-after-prune', { name })
  if (kind === 'aside') {
    const creator = Number(/\.cad-(\d+)-/.exec(name)[1])
    let entry = null
    try {
      entry = JSON.parse(readFileSync(join(dir, name), 'utf8'))
    } catch {
      violate('torn-aside', { name })
    }
    if (entry && entry.pid !== 0 && entry.pid !== creator) {
      const creatorEnd = Math.min(...[...lifetimes].filter(([key]) => key.startsWith(`${creator}:`)).map(([, life]) => life.end ?? Infinity))
      const owner = lifetimes.get(ownerKey(entry.pid, entry.pidStartTime))
      if (owner && (owner.end === null || owner.end > creatorEnd)) violate('live-entry-stranded-aside', { name, owner: entry.pid, creator })
    }
  }
}
const twoMinutesAgo = new Date(Date.now() - 120_000)
for (const name of leftovers) utimesSync(join(dir, name), twoMinutesAgo, twoMinutesAgo)
const sweep = await registry.prune()
bump(counts.final, 'prune-3-swept', sweep.filter((item) => item.reason === 'stale-temp' || item.reason === 'stale-lock').length)
const end = readFolder()
compare('after leftovers aged and a third prune', expectAfter((entry) => entry.pid === 0))
for (const name of end.others) violate('debris-after-prune', { name })
for (let index = 0; index < Number(args['lock-targets']); index++) {
  // No process is left, so every workspace lock must be free.
  try {
    const release = await registry.lock(join(root, `ws-${String(index).padStart(2, '0')}`))
    await release()
  } catch (error) {
    violate('lock-still-held', { index, code: error.code })
  }
}

// The watcher's sweep must see every owner gone: each `up` gets its `down`.
try {
  await until(() => upOwner.size === 0, 10_000, 'the watcher to report every owner down')
} catch {
  violate('up-without-down', { owners: [...upOwner] })
}
await watcher.close()
checkLogs()
for (const worker of slots) if (!worker.exited) worker.child.kill('SIGKILL')

const report = {
  seconds: Math.round((Date.now() - startedAt) / 1000),
  workers: workerCount,
  workspaces: workspaceCount,
  kills: counts.kills,
  spawns: counts.spawns,
  operations: counts.operations,
  deletions: counts.deletions,
  events: counts.events,
  downReasons: counts.downReasons,
  final: counts.final,
  violationCount: violations.length,
  violationsByKind: violations.reduce((table, { kind }) => bump(table, kind) && table, {}),
  violations: violations.slice(0, 200),
  root: args.keep || violations.length > 0 ? root : undefined,
}
if (!args.keep && violations.length === 0) rmSync(root, { recursive: true, force: true })
// Written synchronously: process.exit would cut an asynchronous write to a pipe short.
writeSync(1, args.json ? `${JSON.stringify(report)}\n` : formatReport(report))
process.exit(violations.length === 0 ? 0 : 1)

function formatReport(result) {
  const lines = []
  const table = (title, rows) => {
    const entries = Object.entries(rows).sort(([a], [b]) => (a < b ? -1 : 1))
    const total = entries.reduce((sum, [, n]) => sum + n, 0)
    lines.push(`${title} (${total})`)
    for (const [name, n] of entries) lines.push(`  ${name.padEnd(34)} ${n}`)
  }
  lines.push(`chaos soak: ${result.seconds} s, ${result.workers} workers, ${result.workspaces} workspaces, ${result.kills} kills, ${result.spawns} spawns`)
  table('operations', result.operations)
  table('deletions (operation/why)', result.deletions)
  table('watcher events', result.events)
  table('down reasons', result.downReasons)
  table('final checks', result.final)
  lines.push(`violations: ${result.violationCount}`)
  for (const item of result.violations.slice(0, 50)) lines.push(`  ${JSON.stringify(item).slice(0, 1000)}`)
  if (result.root) lines.push(`logs and registry kept in ${result.root}`)
  return `${lines.join('\n')}\n`
}
