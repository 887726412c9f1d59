// The simplest correct code for each operation, with raw `fs` calls: what the registry is measured against.
import { createHash } from 'node:crypto'
import { closeSync, fsyncSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'

function startTicks(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'latin1')
  return text.slice(text.lastIndexOf(')') + 2).split(' ')[19]
}

/** Same liveness checks as the registry: kill(pid, 0), /proc/<pid>/stat start time, stat(cwd). */
function isLive(entry) {
  if (entry.pid > 0) {
    try {
      process.kill(entry.pid, 0)
    } catch (error) {
      if (error.code === 'ESRCH') return false
    }
    try {
      if (startTicks(entry.pid) !== entry.pidStartTime) return false
    } catch {
      return false
    }
  }
  return statSync(entry.cwd, { throwIfNoEntry: false })?.isDirectory() === true
}

function byNameThenCwd(a, b) {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1
  return a.cwd < b.cwd ? -1 : a.cwd > b.cwd ? 1 : 0
}

/** readdir + readFileSync + JSON.parse: every parsable `.json` file with its path. */
function* entries(dir) {
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.json')) continue
    const path = join(dir, name)
    try {
      yield { path, entry: JSON.parse(readFileSync(path, 'utf8')) }
    } catch {
      // not an entry: skipped, as the registry skips it
    }
  }
}

/** readdir + readFileSync + JSON.parse + the liveness checks, sorted like list(). */
export function rawList(dir) {
  const out = []
  for (const { entry } of entries(dir)) if (isLive(entry)) out.push(entry)
  return out.sort(byNameThenCwd)
}

/** rawList plus a stat of each file for its mtime, as listInfo() reports. */
export function rawListInfo(dir) {
  const out = []
  for (const { path, entry } of entries(dir)) {
    if (isLive(entry)) out.push({ ...entry, status: 'alive', reason: null, path, mtime: statSync(path).mtime.toISOString() })
  }
  return out.sort(byNameThenCwd)
}

/** realpath + sha256 id + readFileSync + JSON.parse + the liveness checks. */
export function rawRead(dir, cwd) {
  const canonical = realpathSync.native(cwd)
  const id = createHash('sha256').update(canonical).digest('hex').slice(0, 16)
  let entry
  try {
    entry = JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8'))
  } catch {
    return undefined
  }
  return isLive(entry) ? entry : undefined
}

let counter = 0
/** open + write + fsync + close + rename of the same bytes. */
export function rawWrite(dir, name, bytes) {
  const temp = join(dir, `${name}.raw-${process.pid}-${counter++}`)
  const fd = openSync(temp, 'wx', 0o600)
  writeSync(fd, bytes)
  fsyncSync(fd)
  closeSync(fd)
  renameSync(temp, join(dir, name))
}

/** rawList's check, and unlink of every entry that fails it. */
export function rawPrune(dir) {
  const removed = []
  for (const { path, entry } of entries(dir)) {
    if (isLive(entry)) continue
    unlinkSync(path)
    removed.push(path)
  }
  return removed
}
