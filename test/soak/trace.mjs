// Deletion tracing for the chaos soak, with no hook in the library: the library deletes an entry only by
// compare-and-delete (rename aside to `<id>.json.cad-<pid>-…`, compare, unlink or link back), so wrapping
// fs.unlinkSync / fs.linkSync (and re-syncing the ESM named exports the built library imported) sees every
// entry that leaves the registry. Each one is appended to a shared NDJSON log with its evidence: the
// deleted bytes, who deleted it during which operation, and what /proc said about the owner at that moment.
import fs from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import { basename } from 'node:path'

const ASIDE = /^([0-9a-f]{16})\.json\.cad-(\d+)-/

/** What /proc says about `pid` right now: gone, or its state letter and start ticks. */
export function procState(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { state: fields[0], startTime: fields[19] }
  } catch {
    return { state: 'gone', startTime: null }
  }
}

/**
 * Start tracing deletions into `logPath`; `currentOp()` names the operation in progress (the reason).
 * Returns nothing; tracing lasts for the life of the process.
 */
export function traceDeletions(logPath, currentOp) {
  const superseded = new Set()
  const restored = new Set()
  const self = process.pid
  const selfStart = procState(self).startTime
  const originalUnlink = fs.unlinkSync
  const originalLink = fs.linkSync

  fs.linkSync = function linkSync(source, target) {
    try {
      const result = originalLink(source, target)
      if (ASIDE.test(basename(String(source)))) restored.add(String(source))
      return result
    } catch (error) {
      // A failed link-back means a newer write already stands: the version taken aside was overwritten, not deleted.
      if (error?.code === 'EEXIST' && ASIDE.test(basename(String(source)))) superseded.add(String(source))
      throw error
    }
  }

  fs.unlinkSync = function unlinkSync(path) {
    const name = basename(String(path))
    const match = ASIDE.exec(name)
    if (!match) return originalUnlink(path)
    let bytes = null
    try {
      bytes = fs.readFileSync(path)
    } catch {
      // already gone: the unlink below reports it
    }
    originalUnlink(path)
    // Linked back: the entry stayed where it was (a later overwrite of it is a write, not our deletion).
    if (restored.delete(String(path)) || bytes === null) return
    let entry = null
    try {
      entry = JSON.parse(bytes.toString('utf8'))
    } catch {
      entry = null
    }
    const owner = entry && Number.isSafeInteger(entry.pid) && entry.pid > 0 ? procState(entry.pid) : null
    const kind = superseded.delete(String(path)) ? 'superseded' : Number(match[2]) === self ? 'compare-and-delete' : 'swept-aside'
    const record = {
      t: Date.now(),
      deleter: self,
      deleterStart: selfStart,
      op: currentOp(),
      kind,
      id: match[1],
      pid: entry?.pid ?? null,
      pidStartTime: entry?.pidStartTime ?? null,
      parsed: entry !== null,
      ownerNow: owner,
    }
    fs.appendFileSync(logPath, `${JSON.stringify(record)}\n`)
  }
  syncBuiltinESMExports()
}
