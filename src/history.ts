import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, renameSync, writeSync } from 'node:fs'
import { basename, join } from 'node:path'
import type { Entry } from './entry.js'
import { RegistryError, isErrno } from './errors.js'

/** The history file in a registry folder: one NDJSON line per entry the registry deleted or quarantined. */
export const HISTORY_FILE = '.history'
/** The older generation, kept after a rotation. */
export const HISTORY_OLD_FILE = '.history.1'
/** History files as found in the folder: never entries, debris or corrupt files. */
export const HISTORY_NAME = /^\.history(?:\.1)?$/
/** The history file is rotated once it would pass this size; one older file is kept, so history holds at most ~2 MiB. */
export const HISTORY_ROTATE_BYTES = 1024 * 1024

// One record is one write(2) with O_APPEND: a local filesystem appends it whole, never interleaved with another
// appender's. Bounding the line keeps a record a small write (and the files a known number of records).
const MAX_LINE_BYTES = 4096
// Records written together (one scan's) go in writes of at most this size.
const MAX_WRITE_BYTES = 64 * 1024
const MAX_WRITE_UNITS = Math.floor(MAX_WRITE_BYTES / 3)
// Reading never takes in more than this per file (an appender holding the old descriptor may grow `.history.1` a little).
const MAX_READ_BYTES = 4 * HISTORY_ROTATE_BYTES

/** What ended an entry: which operation of the registry deleted (or quarantined) its file. */
export type HistoryEvent = 'pruned' | 'removed' | 'reaped' | 'released' | 'migrated' | 'quarantined'

/** One end the registry recorded (see {@link Registry.history}). */
export interface HistoryRecord {
  /** When the file was deleted or moved (ISO-8601 UTC). */
  at: string
  /** Workspace id. */
  id: string
  /** Workspace root; null for a corrupt file, which names none. */
  cwd: string | null
  /** The entry's name; null for a corrupt file. */
  name: string | null
  /** The owner pid the entry recorded; null for a corrupt file. */
  pid: number | null
  /** What the registry did: `pruned`, `removed`, `reaped`, `released`, `migrated` or `quarantined`. */
  event: HistoryEvent
  /** Why: the entry's status reason (`exited`, `pid-reused`, `rebooted`, `cwd-missing`, `lease-expired`…), a reap outcome, `corrupt`; null when asked for. */
  reason: string | null
  /** Pid of the process that did it. */
  by: number
  /** For a corrupt file: what is wrong with it. */
  problem?: string
  /** For a quarantined file: its name in `.quarantine/`. */
  to?: string
  /** Set when `cwd`, `name` or `problem` were cut short to keep the record one small line. */
  truncated?: true
}

/** What a caller records; `at` and `by` are filled in. */
export type HistoryInput = Omit<HistoryRecord, 'at' | 'by' | 'truncated' | 'to'> & { to?: string | null }

const APPEND_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | (constants.O_NOFOLLOW ?? 0)
const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0)

/** Cut `text` to `length` UTF-16 units without splitting a surrogate pair. */
function cut(text: string, length: number): string {
  const code = text.charCodeAt(length - 1)
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? length - 1 : length)
}

/** The record as one NDJSON line of at most {@link MAX_LINE_BYTES}: the longest text field is halved until it fits. */
function lineOf(record: HistoryRecord): string {
  const fields = ['cwd', 'name', 'problem'] as const
  for (;;) {
    const line = `${JSON.stringify(record)}\n`
    // A UTF-16 unit is at most 3 UTF-8 bytes: only a long line needs its bytes counted.
    if (line.length * 3 <= MAX_LINE_BYTES || Buffer.byteLength(line) <= MAX_LINE_BYTES) return line
    let longest: (typeof fields)[number] = 'cwd'
    for (const field of fields) if ((record[field]?.length ?? 0) > (record[longest]?.length ?? 0)) longest = field
    record[longest] = cut(record[longest] ?? '', Math.floor((record[longest]?.length ?? 0) / 2))
    record.truncated = true
  }
}

/**
 * Append records to `dir/.history`. Never throws and never blocks what it records: a full disk, a read-only folder or
 * no descriptors to spare lose the records (returns false), never the deletions they describe.
 */
export function appendHistory(dir: string, inputs: HistoryInput | HistoryInput[]): boolean {
  const batch = new HistoryBatch(dir)
  for (const input of Array.isArray(inputs) ? inputs : [inputs]) batch.add(input)
  return batch.flush()
}

/**
 * Records of one scan, written as they come in writes of at most {@link MAX_WRITE_BYTES}: a prune of thousands of
 * entries opens the file once per 64 KiB of records, not per record, and holds no more than that many records' text.
 * Never throws (see {@link appendHistory}).
 */
export class HistoryBatch {
  #text = ''
  #at: string | undefined
  #ok = true

  constructor(readonly dir: string) {}

  /** Record one end; written once a write's worth has gathered, or by {@link flush}. */
  add(input: HistoryInput): void {
    try {
      // A write's records share the time it was gathered in (they were ended within the same moment).
      const line = lineOf(recordOf(input, (this.#at ??= new Date().toISOString())))
      // Counted in UTF-16 units, at most 3 UTF-8 bytes each: no byte count per line, and a write never passes the bound.
      if (this.#text.length + line.length > MAX_WRITE_UNITS) this.flush()
      this.#text += line
    } catch {
      this.#ok = false
    }
  }

  /** Write what has gathered; false when any record of the batch was lost. */
  flush(): boolean {
    if (this.#text.length > 0) {
      try {
        this.#ok = writeLines(this.dir, Buffer.from(this.#text)) && this.#ok
      } catch {
        this.#ok = false
      }
      this.#text = ''
      this.#at = undefined
    }
    return this.#ok
  }
}

function recordOf(input: HistoryInput, at: string): HistoryRecord {
  // One literal per shape, in the key order the file has always had: `problem` (quarantine only) before `by`, `to` last.
  const { id, cwd, name, pid, event, reason, problem, to } = input
  const record: HistoryRecord = problem === undefined
    ? { at, id, cwd, name, pid, event, reason, by: process.pid }
    : { at, id, cwd, name, pid, event, reason, problem, by: process.pid }
  if (to) record.to = basename(to)
  return record
}

/** One write of whole lines, after rotating a file that they would take past {@link HISTORY_ROTATE_BYTES}. */
function writeLines(dir: string, bytes: Buffer): boolean {
  const path = join(dir, HISTORY_FILE)
  let fd = openSync(path, APPEND_FLAGS, 0o600)
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile()) return false
    if (stat.size > 0 && stat.size + bytes.length > HISTORY_ROTATE_BYTES) {
      rotate(dir, stat.ino)
      closeSync(fd)
      fd = -1
      fd = openSync(path, APPEND_FLAGS, 0o600)
    }
    // One write: appenders never interleave. A short write (a disk filling up) leaves a torn line, which readers skip.
    return writeSync(fd, bytes) === bytes.length
  } finally {
    if (fd >= 0) closeSync(fd)
  }
}

/** The record of the registry ending `entry` (deleting its file) by `event`, for `reason`. */
export function endOf(entry: Pick<Entry, 'id' | 'cwd' | 'name' | 'pid'>, event: HistoryEvent, reason: string | null): HistoryInput {
  return { id: entry.id, cwd: entry.cwd, name: entry.name, pid: entry.pid, event, reason }
}

/** The record of the registry moving a corrupt file of workspace `id` into quarantine (at `to`). */
export function quarantineOf(id: string, problem: string, to: string): HistoryInput {
  return { id, cwd: null, name: null, pid: null, event: 'quarantined', reason: 'corrupt', problem, to }
}

/** Record that the registry ended `entry` by `event`, for `reason`; never throws. */
export function recordEnd(dir: string, entry: Pick<Entry, 'id' | 'cwd' | 'name' | 'pid'>, event: HistoryEvent, reason: string | null): boolean {
  return appendHistory(dir, endOf(entry, event, reason))
}

/**
 * Move the full generation aside as `.history.1` (replacing the older one). Only the file we measured: when another
 * appender rotated it first, the name already holds a fresh file, which must not be rotated away in turn. (Two
 * appenders rotating the same generation within the microseconds between this check and the rename can still move the
 * fresh file over it: the older generation is then dropped early. Bounded, never fatal, and no lock to leave behind.)
 */
function rotate(dir: string, ino: number): void {
  const path = join(dir, HISTORY_FILE)
  if (lstatSync(path, { throwIfNoEntry: false })?.ino !== ino) return
  try {
    renameSync(path, join(dir, HISTORY_OLD_FILE))
  } catch (error) {
    // Another appender rotated it between our look and our rename: done, and our record still goes in.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
}

/** Which records {@link readHistory} returns. */
export interface HistoryQuery {
  /** Only records of this workspace id. */
  id?: string | undefined
  /** Only records at or after this time. */
  since?: Date | undefined
  /** At most this many (the newest). */
  limit?: number | undefined
}

/** Records of `dir`, newest first: `.history.1` then `.history`, a torn or foreign line skipped. */
export function readHistory(dir: string, query: HistoryQuery = {}): HistoryRecord[] {
  const records: HistoryRecord[] = []
  const since = query.since?.getTime()
  for (const file of [HISTORY_OLD_FILE, HISTORY_FILE]) {
    const text = readTail(join(dir, file))
    if (text === undefined) continue
    for (const line of text.split('\n')) {
      const record = parseLine(line)
      if (!record) continue
      if (query.id !== undefined && record.id !== query.id) continue
      if (since !== undefined && !(Date.parse(record.at) >= since)) continue
      records.push(record)
    }
  }
  // File order is append order; a record appended through a descriptor opened before a rotation may sit in the older file.
  records.reverse()
  const time = (record: HistoryRecord) => Date.parse(record.at) || 0
  records.sort((a, b) => time(b) - time(a))
  return query.limit === undefined ? records : records.slice(0, Math.max(0, query.limit))
}

/** The file's text (its last {@link MAX_READ_BYTES}); undefined when it does not exist. */
function readTail(path: string): string | undefined {
  let fd: number
  try {
    fd = openSync(path, READ_FLAGS)
  } catch (error) {
    if (isErrno(error, 'ENOENT', 'ELOOP')) return undefined
    throw unreadable(path, error)
  }
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile()) return undefined
    const length = Math.min(stat.size, MAX_READ_BYTES)
    const buffer = Buffer.allocUnsafe(length)
    let done = 0
    while (done < length) {
      const n = readSync(fd, buffer, done, length - done, stat.size - length + done)
      if (n === 0) break
      done += n
    }
    return buffer.toString('utf8', 0, done)
  } catch (error) {
    throw unreadable(path, error)
  } finally {
    closeSync(fd)
  }
}

function unreadable(path: string, error: unknown): RegistryError {
  return new RegistryError('E_UNREADABLE', `History file ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}): check its owner and mode (600).`, { path })
}

const EVENTS = new Set<string>(['pruned', 'removed', 'reaped', 'released', 'migrated', 'quarantined'])
const RECORD_START = '{"at":'

/** One line as a record, or undefined. A line glued to a torn one (a write cut short by a full disk) is read from its own start. */
function parseLine(line: string): HistoryRecord | undefined {
  if (line.length === 0) return undefined
  const record = parseRecord(line)
  if (record) return record
  const start = line.lastIndexOf(RECORD_START)
  return start > 0 ? parseRecord(line.slice(start)) : undefined
}

function parseRecord(text: string): HistoryRecord | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const record = value as Record<string, unknown>
  if (typeof record.at !== 'string' || typeof record.id !== 'string' || typeof record.event !== 'string' || !EVENTS.has(record.event)) return undefined
  if (typeof record.by !== 'number') return undefined
  return {
    ...record,
    cwd: typeof record.cwd === 'string' ? record.cwd : null,
    name: typeof record.name === 'string' ? record.name : null,
    pid: typeof record.pid === 'number' ? record.pid : null,
    reason: typeof record.reason === 'string' ? record.reason : null,
  } as HistoryRecord
}
