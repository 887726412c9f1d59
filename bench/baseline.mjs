// What a careful hand-written registry would do with raw `fs` calls: the fair baselines the registry is measured
// against. They check what the registry checks about liveness (owner alive by its start identity, workspace
// folder present) the way a careful author would — one /proc read per distinct pid, kill(pid, 0) only where /proc
// cannot answer, the same one-call cwd check — and skip what only the registry does: validating entries, the id
// check, hostile files, legacy and debris handling, compare-and-delete.
import { createHash } from 'node:crypto'
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'

/** Start ticks of `pid` from /proc/<pid>/stat; null when the process is gone; undefined when /proc cannot tell. */
function startTicks(pid) {
  let text
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch (error) {
    if (error.code === 'ENOENT' || error.code === 'ESRCH') return null
    try {
      process.kill(pid, 0)
    } catch (signalError) {
      if (signalError.code === 'ESRCH') return null
    }
    return undefined
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return fields[0] === 'Z' || fields[0] === 'X' ? null : fields[19]
}

/**
 * The registry's statuses, judged the simple way: `dead` (owner gone or its pid reused), `unknown` (/proc cannot
 * tell), `orphan` (owner alive, folder gone), `alive`; entries without an owner are `idle` or `gone` by their folder.
 * `probes` memoizes the /proc read per pid across one list; a lone read passes none.
 */
function judge(entry, probes) {
  const folder = () => existsSync(`${entry.cwd}/.`)
  if (!(entry.pid > 0)) return folder() ? 'idle' : 'gone'
  let ticks = probes?.get(entry.pid)
  if (ticks === undefined && !probes?.has(entry.pid)) {
    ticks = startTicks(entry.pid)
    probes?.set(entry.pid, ticks)
  }
  if (ticks === null) return 'dead'
  if (ticks === undefined) return 'unknown'
  if (entry.pidStartTime !== null && ticks !== entry.pidStartTime) return 'dead'
  return folder() ? 'alive' : 'orphan'
}

const prunable = (status) => status === 'dead' || status === 'gone'

function byNameThenCwd(a, b) {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1
  return a.cwd < b.cwd ? -1 : a.cwd > b.cwd ? 1 : 0
}

/** readdir + readFileSync + JSON.parse: every parsable `.json` file with its path. */
function* entries(dir) {
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.json')) continue
    const path = `${dir}/${name}`
    try {
      yield { path, entry: JSON.parse(readFileSync(path, 'utf8')) }
    } catch {
      // not an entry: skipped, as the registry skips it
    }
  }
}

/** readdir + readFileSync + JSON.parse + the liveness checks (one /proc read per pid), sorted like list(). */
export function rawList(dir) {
  const probes = new Map()
  const out = []
  for (const { entry } of entries(dir)) if (!prunable(judge(entry, probes))) out.push(entry)
  return out.sort(byNameThenCwd)
}

/** rawList plus a stat of each file for its mtime, as listInfo() reports. */
export function rawListInfo(dir) {
  const probes = new Map()
  const out = []
  for (const { path, entry } of entries(dir)) {
    const status = judge(entry, probes)
    if (!prunable(status)) out.push({ ...entry, status, path, mtime: statSync(path).mtime.toISOString() })
  }
  return out.sort(byNameThenCwd)
}

/** realpath + sha256 id + readFileSync + JSON.parse + the liveness checks. */
export function rawRead(dir, cwd) {
  const canonical = realpathSync.native(cwd)
  const id = createHash('sha256').update(canonical).digest('hex').slice(0, 16)
  let entry
  try {
    entry = JSON.parse(readFileSync(`${dir}/${id}.json`, 'utf8'))
  } catch {
    return undefined
  }
  return prunable(judge(entry)) ? undefined : entry
}

let counter = 0
/** open + write + fsync + close + rename of the same bytes. */
export function rawWrite(dir, name, bytes) {
  const temp = `${dir}/${name}.raw-${process.pid}-${counter++}`
  const fd = openSync(temp, 'wx', 0o600)
  writeSync(fd, bytes)
  fsyncSync(fd)
  closeSync(fd)
  renameSync(temp, `${dir}/${name}`)
}

/**
 * rawList's judgement, then a plain `unlink` of every entry found dead. It SKIPS compare-and-delete: a writer that
 * re-registered the workspace between the read and the unlink loses its new entry.
 */
export function rawPrune(dir) {
  const probes = new Map()
  const removed = []
  for (const { path, entry } of entries(dir)) {
    if (!prunable(judge(entry, probes))) continue
    unlinkSync(path)
    removed.push(path)
  }
  return removed
}
