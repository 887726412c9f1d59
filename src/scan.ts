import { type Dirent, lstatSync, readdirSync } from 'node:fs'
import { basename, join, sep } from 'node:path'
import { parseEntry, serializeEntry, type Entry, type ParseResult } from './entry.js'
import { isErrno } from './errors.js'
import { HistoryBatch, appendHistory, endOf, quarantineOf } from './history.js'
import { pickWinner, upgradeLegacy, type Candidate } from './legacy.js'
import { LOCK_FILE, LOCK_FILE_NAME, LOCK_TEMP_NAME, staleLockRecord, sweepLockFiles } from './lock.js'
import { ENTRY_NAME, TEMP_NAME } from './paths.js'
import { Judge, isPrunable, type StatusReason } from './status.js'
import {
  checkDir, compareAndDelete, createExclusive, parseAside, placeExclusive, quarantine, readEntryFile, readEntryQuick, readEntryView, sweepTemp, unlinkQuiet, unreadableError,
  type Judged, type QuickRead,
} from './store.js'

/** Why `registry.prune()` took a file away. */
export type PruneReason = StatusReason | 'legacy-duplicate' | 'legacy-migrated' | 'corrupt' | 'stale-temp' | 'stale-lock' | 'restored'

/** One file `registry.prune()` (or a self-pruning read) removed, moved or would have. */
export interface PruneItem {
  /** Workspace id (for temp files: of the entry they were written for). */
  id: string
  /** The workspace root, when the file was readable. */
  cwd: string | null
  /** The file removed, quarantined or swept. */
  path: string
  /** Why: the entry's death (`exited`, `pid-reused`, …) or the kind of debris. */
  reason: PruneReason
  /** For corrupt files: what is wrong, and where the file went. */
  problem?: string
  /** Where a corrupt file was moved (null when it could not be, or with `dryRun`). */
  quarantinedTo?: string | null
}

/** What `registry.prune()` did (or, with `dryRun`, would do). */
export type PruneReport = PruneItem[]

/** A file with an entry's name that is not an entry by its own bytes or type. */
export interface CorruptFile {
  id: string
  file: string
  problem: string
  mtimeMs: number | null
  /** What was judged corrupt: quarantine moves the file only while it is still exactly this. */
  judged: Judged
}

export interface ScanOptions {
  /** Delete dead and gone entries, migrate legacy files, sweep stale temp files. */
  prune: boolean
  /** Report only: change nothing on disk. */
  dryRun?: boolean
  /** Keep the judged bytes of returned rows (a later compare-and-delete needs them); lists drop them to stay small. */
  keepBytes?: boolean
  /** Move corrupt files into `.quarantine/`. */
  quarantine?: boolean
  /** Throw `E_UNREADABLE` for a file that cannot be read, instead of skipping it (callers about to write). */
  strict?: boolean
  /** Give every row its file's mtime (listInfo shows it); otherwise only rows whose judgement needs it have one. */
  mtimes?: boolean
  /** Return the dead and gone candidates too (`listInfo({ all })` shows them); otherwise they are not kept past their group. */
  dead?: boolean
}

export interface ScanResult {
  rows: Candidate[]
  /** Dead and gone candidates, only with {@link ScanOptions.dead}. */
  dead: Candidate[]
  corrupt: CorruptFile[]
  report: PruneItem[]
  /** Ends to record in the history, written in batches as the scan goes (flushed when it is done). */
  ended: HistoryBatch
}

/** A temp file older than this is a crashed writer's debris. */
const STALE_TEMP_MS = 60_000
const NO_BYTES = Buffer.alloc(0)

/** Rows sort by name, then cwd, by UTF-16 code units: the same order on every machine. */
export function byNameThenCwd(a: Candidate, b: Candidate): number {
  const x = a.entry
  const y = b.entry
  if (x.name !== y.name) return x.name < y.name ? -1 : 1
  return x.cwd < y.cwd ? -1 : x.cwd > y.cwd ? 1 : 0
}

/**
 * One registry folder as files: reading it, judging every workspace in it, and — when asked — the
 * self-pruning that goes with reading (compare-and-delete of dead entries, legacy migration, debris).
 */
export class Folder {
  readonly #prefix: string
  /**
   * While a scan reads the files it listed: those the listing did not show as regular files. Unset otherwise, so a
   * lone read (`resolve`) reads every file with all the checks.
   */
  #irregular: ReadonlySet<string> | undefined

  constructor(
    readonly dir: string,
    readonly marker: string | undefined,
    readonly leaseGraceMs?: number,
  ) {
    this.#prefix = dir.endsWith(sep) ? dir : dir + sep
  }

  // `dir` is resolved and file names are plain, so concatenation is what path.join would return, without its normalizing pass per file.
  /** The path of `file` inside the folder. */
  path(file: string): string {
    return this.#prefix + file
  }

  /** Entry files of `id`: the canonical one first, then legacy ones (needs a folder scan). */
  filesOf(id: string): string[] {
    const files = [`${id}.json`]
    let names: string[]
    try {
      names = readdirSync(this.dir)
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return files
      throw error
    }
    const prefix = `${id}-`
    for (const name of names) if (name.startsWith(prefix) && ENTRY_NAME.test(name)) files.push(name)
    return files
  }

  /**
   * Move the canonical file of `id` to `.quarantine/` if it is there but not a valid entry (compare-and-move);
   * throws `E_UNREADABLE` when it cannot be read, since that proves nothing about it.
   */
  quarantineCorrupt(id: string): void {
    const file = `${id}.json`
    const read = readEntryView(this.path(file))
    if (read.kind === 'unreadable') throw unreadableError(this.path(file), read.problem)
    let judged: Judged
    let problem: string
    if (read.kind === 'corrupt') {
      judged = read.judged
      problem = read.problem
    } else {
      if (read.kind !== 'ok') return
      const parsed = parseEntry(read.bytes, id)
      if (parsed.ok) return
      judged = Buffer.from(read.bytes)
      problem = parsed.problem
    }
    const to = quarantine(this.dir, file, judged)
    if (to) appendHistory(this.dir, quarantineOf(id, problem, to))
  }

  /** What makes the canonical file of `id` corrupt, or null when it is missing, unreadable or a valid entry. */
  corruptProblem(id: string): string | null {
    const read = readEntryView(this.path(`${id}.json`))
    if (read.kind === 'corrupt') return read.problem
    if (read.kind !== 'ok') return null
    const parsed = parseEntry(read.bytes, id)
    return parsed.ok ? null : parsed.problem
  }

  /** The canonical file of `id`, parsed but not judged; `strict` throws `E_UNREADABLE` rather than skip an unreadable file. */
  readCanonical(id: string, strict = false): Candidate | undefined {
    const file = `${id}.json`
    const read = readEntryFile(this.path(file))
    if (read.kind === 'unreadable' && strict) throw unreadableError(this.path(file), read.problem)
    if (read.kind !== 'ok') return undefined
    const parsed = parseEntry(read.bytes, id)
    if (!parsed.ok) return undefined
    return { file, legacy: false, bytes: read.bytes, entry: parsed.entry, mtimeMs: read.mtimeMs, verdict: { status: 'unknown', reason: null } }
  }

  /** The winning candidate of one workspace; O(1) when its canonical file holds a current entry. */
  resolve(id: string, options: ScanOptions): Candidate | undefined {
    if (!checkDir(this.dir)) return undefined
    const judge = new Judge(this.marker, this.leaseGraceMs)
    const canonical = this.readCanonical(id, options.strict)
    if (canonical) {
      canonical.verdict = judge.judge(canonical.entry, canonical.mtimeMs)
      if (!isPrunable(canonical.verdict.status)) return canonical
    }
    const result: ScanResult = { rows: [], dead: [], corrupt: [], report: [], ended: new HistoryBatch(this.dir) }
    this.#resolveGroup(id, this.filesOf(id), judge, { ...options, keepBytes: true }, result)
    result.ended.flush()
    return result.rows[0]
  }

  /** Read (and, when asked, clean) the whole folder. */
  scan(options: ScanOptions): ScanResult {
    const result: ScanResult = { rows: [], dead: [], corrupt: [], report: [], ended: new HistoryBatch(this.dir) }
    if (!checkDir(this.dir)) return result
    let names: Dirent[]
    try {
      // The file types come with the names (no system call per file): a file that is not plainly a regular one is
      // read with the full checks, so a FIFO with a writer is refused, not read as an entry (see readEntryQuick).
      names = readdirSync(this.dir, { withFileTypes: true })
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return result
      throw error
    }
    // Almost every workspace has one file: keep its name as is and make an array only for legacy groups.
    const groups = new Map<string, string | string[]>()
    const temps: string[] = []
    const locks: string[] = []
    const irregular = new Set<string>()
    for (const dirent of names) {
      const name = dirent.name
      const match = ENTRY_NAME.exec(name)
      if (match) {
        if (!dirent.isFile()) irregular.add(name)
        const id = match[1] as string
        const files = groups.get(id)
        if (files === undefined) groups.set(id, name)
        else if (typeof files === 'string') groups.set(id, [files, name])
        else files.push(name)
      } else if (TEMP_NAME.test(name) || LOCK_TEMP_NAME.test(name)) {
        temps.push(name)
      } else if (LOCK_FILE_NAME.test(name)) {
        locks.push(name)
      }
    }
    names.length = 0 // the Dirents are garbage from here: not kept (and traced) while every file is read
    const judge = new Judge(this.marker, this.leaseGraceMs)
    const debris: string[] = []
    for (const name of temps) {
      const handled = this.#restoreAside(name, judge, options, result)
      if (handled === false) debris.push(name)
      // A restored entry is listed like any other (it was not in the folder when it was read).
      // Where the aside is not put back (no pruning, a dry run, a read-only folder), it is read in place of the missing entry file.
      if (typeof handled === 'string' && !groups.has(handled.slice(0, 16))) groups.set(handled.slice(0, 16), handled)
    }
    this.#irregular = irregular
    try {
      for (const [id, files] of groups) this.#resolveGroup(id, typeof files === 'string' ? [files] : files, judge, options, result)
    } finally {
      this.#irregular = undefined
    }
    if (options.prune) {
      const now = Date.now()
      for (const name of debris) {
        if (sweepTemp(this.dir, name, now, STALE_TEMP_MS, options.dryRun ?? false)) {
          result.report.push({ id: name.slice(0, 16), cwd: null, path: this.path(name), reason: 'stale-temp' })
        }
      }
      for (const name of locks) this.#dropStaleLockRecord(name.slice(0, 16), judge, options, result)
    }
    // Lock files (macOS, BSDs) are taken to be judged, so only an explicit prune looks at them, never a list.
    if (options.prune && options.quarantine) {
      for (const path of sweepLockFiles(this.dir, options.dryRun ?? false)) result.report.push({ id: basename(path).slice(0, 16), cwd: null, path, reason: 'stale-lock' })
    }
    if (options.quarantine) {
      for (const file of result.corrupt) {
        const quarantinedTo = options.dryRun ? null : quarantine(this.dir, file.file, file.judged)
        if (quarantinedTo) result.ended.add(quarantineOf(file.id, file.problem, quarantinedTo))
        result.report.push({ id: file.id, cwd: null, path: this.path(file.file), reason: 'corrupt', problem: file.problem, quarantinedTo })
      }
    }
    result.rows.sort(byNameThenCwd)
    result.ended.flush()
    return result
  }

  /** Judge every file of one workspace, pick the one that speaks for it, and (when pruning) clean up the rest. */
  #resolveGroup(id: string, files: string[], judge: Judge, options: ScanOptions, result: ScanResult): void {
    // A lone file (nearly every workspace) may keep its bytes as a view of the read buffer: nothing reads another
    // entry file before its group is settled, and no candidate leaves the group holding the view.
    const view = files.length === 1 && !options.keepBytes
    const candidates: Candidate[] = []
    for (const file of files) {
      const legacy = file.charAt(16) === '-' // `<16 hex>-<pid>.json`; a canonical file (or its aside) has a dot there
      const path = this.path(file)
      const quick = this.#irregular !== undefined && !this.#irregular.has(file) && !legacy && options.mtimes !== true
      const { read, parsed } = this.#readFile(path, id, legacy, judge, !quick)
      if (read.kind === 'missing') continue
      if (read.kind === 'unreadable') {
        // Not corrupt, not gone: skipped by lists (doctor reports it), never moved; a caller about to write fails.
        if (options.strict) throw unreadableError(path, read.problem)
        continue
      }
      if (read.kind === 'corrupt') {
        result.corrupt.push({ id, file, problem: read.problem, mtimeMs: read.mtimeMs, judged: read.judged })
        continue
      }
      if (!parsed?.ok) {
        result.corrupt.push({ id, file, problem: parsed?.problem ?? '', mtimeMs: read.mtimeMs, judged: Buffer.from(read.bytes) })
        continue
      }
      shareMachineStrings(parsed.entry, judge)
      const verdict = judge.judge(parsed.entry, read.mtimeMs ?? undefined)
      const bytes = view ? read.bytes : Buffer.from(read.bytes)
      candidates.push({ file, legacy, bytes, entry: parsed.entry, mtimeMs: read.mtimeMs ?? Number.NaN, verdict })
    }
    this.#settleGroup(candidates, judge, options, result)
    if (view) for (const candidate of candidates) candidate.bytes = NO_BYTES
  }

  /**
   * Read and parse one entry file. Lists skip its `fstat` (readEntryQuick): the mtime is read — with the bytes, in
   * one more read of the file — only where something needs it: corrupt rows show it, and an owner without a start
   * identity is judged by when its entry was written.
   */
  #readFile(path: string, id: string, legacy: boolean, judge: Judge, withMtime: boolean): { read: QuickRead; parsed?: ParseResult } {
    const read = withMtime ? readEntryView(path) : readEntryQuick(path)
    if (read.kind !== 'ok') return { read }
    const parsed = parseEntry(read.bytes, id, { legacy, localHost: judge.host })
    if (read.mtimeMs === null && (!parsed.ok || (parsed.entry.pidStartTime === null && parsed.entry.pid !== 0))) {
      return this.#readFile(path, id, legacy, judge, true)
    }
    return { read, parsed }
  }

  /** Pick the candidate that speaks for a workspace and (when pruning) clean up the rest. */
  #settleGroup(candidates: Candidate[], judge: Judge, options: ScanOptions, result: ScanResult): void {
    const winner = pickWinner(candidates)
    if (!winner) return
    if (isPrunable(winner.verdict.status)) {
      for (const candidate of candidates) {
        if (options.dead) result.dead.push(candidate)
        this.#delete(candidate, candidate.verdict.reason ?? 'exited', options, result)
      }
      return
    }
    let row = winner
    if (winner.legacy && options.prune) row = this.#migrate(winner, candidates, judge, options, result) ?? winner
    for (const candidate of candidates) {
      if (candidate === winner || candidate.file === row.file) continue
      if (options.dead && isPrunable(candidate.verdict.status)) result.dead.push(candidate)
      this.#delete(candidate, isPrunable(candidate.verdict.status) ? (candidate.verdict.reason ?? 'exited') : 'legacy-duplicate', options, result)
    }
    if (!options.keepBytes) row.bytes = NO_BYTES
    result.rows.push(row)
  }

  /** Move a legacy winner into `<id>.json`; undefined when a concurrent writer got there first. */
  #migrate(winner: Candidate, candidates: Candidate[], judge: Judge, options: ScanOptions, result: ScanResult): Candidate | undefined {
    const file = `${winner.entry.id}.json`
    const upgraded = upgradeLegacy(winner.entry)
    const data = serializeEntry(upgraded)
    const migrated: Candidate = { ...winner, file, legacy: false, entry: upgraded, bytes: Buffer.from(data) }
    if (options.dryRun) {
      result.report.push({ id: upgraded.id, cwd: upgraded.cwd, path: this.path(winner.file), reason: 'legacy-migrated' })
      return migrated
    }
    try {
      const current = candidates.find((candidate) => !candidate.legacy)
      // Written whole before the judged canonical file is touched: a full disk leaves both files as they were.
      if (!createExclusive(this.dir, file, data, current?.bytes)) return undefined
      if (options.dead && current && isPrunable(current.verdict.status)) result.dead.push(current)
    } catch (error) {
      // A folder we cannot write to (read-only, full) still lists: the legacy row stands until a later migration.
      if (isErrno(error, 'EACCES', 'EPERM', 'EROFS', 'E_NO_SPACE')) return undefined
      throw error
    }
    if (compareAndDelete(this.dir, winner.file, winner.bytes) === 'deleted') {
      result.report.push({ id: upgraded.id, cwd: upgraded.cwd, path: this.path(winner.file), reason: 'legacy-migrated' })
      result.ended.add(endOf(winner.entry, 'migrated', 'legacy-migrated'))
    }
    return migrated
  }

  /**
   * A compare-and-delete killed between taking a file aside and putting it back leaves the file under a
   * private name. If that was a newer live version, sweeping it would lose the entry: put it back instead
   * (link fails when a still newer version exists, which then stands). The deleter's pid and start ticks are in
   * the name, so this needs no age: while the deleter runs (or is us) the aside is its own to settle, and is left
   * alone — a rename keeps the old mtime, so the age rule must never judge an aside — but a reused pid (other start
   * ticks) is not the deleter. Returns the file name to read the entry from when it was put back (or, when it is not
   * put back — no pruning, a dry run, a read-only folder — and no entry file is there: the aside itself), true when
   * the aside was otherwise dealt with, false when it is ordinary debris.
   */
  #restoreAside(name: string, judge: Judge, options: ScanOptions, result: ScanResult): string | boolean {
    const aside = parseAside(name)
    if (!aside) return false
    const deleter = judge.probe(aside.pid)
    const reused = aside.startTicks !== null && deleter.startTime !== null && deleter.startTime !== aside.startTicks
    if (deleter.state !== 'gone' && deleter.state !== 'zombie' && !reused) return true
    const id = name.slice(0, 16)
    const file = aside.entryName
    const read = readEntryFile(this.path(name))
    if (read.kind === 'unreadable') return true // proves nothing: neither restored nor swept
    if (read.kind === 'missing') return true
    const parsed = read.kind === 'ok' ? parseEntry(read.bytes, id, { legacy: file.charAt(16) === '-', localHost: judge.host }) : undefined
    if (read.kind === 'corrupt' || (read.kind === 'ok' && parsed?.ok === false)) {
      // A quarantine killed midway: the corrupt file still goes to quarantine (by prune), never to the sweep.
      if (!options.quarantine) return true
      const judged = read.kind === 'corrupt' ? read.judged : Buffer.from(read.bytes)
      const problem = read.kind === 'corrupt' ? read.problem : parsed?.ok === false ? parsed.problem : ''
      const quarantinedTo = options.dryRun ? null : quarantine(this.dir, name, judged)
      if (quarantinedTo) result.ended.add(quarantineOf(id, problem, quarantinedTo))
      result.report.push({ id, cwd: null, path: this.path(name), reason: 'corrupt', problem, quarantinedTo })
      return true
    }
    if (!parsed?.ok || isPrunable(judge.judge(parsed.entry, read.mtimeMs).status)) return false
    const item: PruneItem = { id, cwd: parsed.entry.cwd, path: this.path(file), reason: 'restored' }
    const inPlace = () => (lstatSync(this.path(file), { throwIfNoEntry: false }) === undefined ? name : true)
    if (options.dryRun || !options.prune) {
      if (options.prune) result.report.push(item)
      return inPlace()
    }
    let restored = false
    try {
      restored = placeExclusive(this.path(name), this.path(file))
    } catch (error) {
      if (!isErrno(error, 'EROFS', 'EACCES', 'EPERM')) throw error
      // Read-only: list what the folder holds. The aside speaks for the entry only when no entry file is there.
      return inPlace()
    }
    result.report.push(restored ? item : { ...item, path: this.path(name), reason: 'stale-temp' })
    unlinkQuiet(this.path(name))
    return restored ? file : true
  }

  /** A lock side file left by a SIGKILLed holder would otherwise stay forever (only messages ever read it). */
  #dropStaleLockRecord(id: string, judge: Judge, options: ScanOptions, result: ScanResult): void {
    const stale = staleLockRecord(this.dir, id, (pid) => judge.probe(pid))
    if (!stale) return
    const item: PruneItem = { id, cwd: null, path: join(this.dir, LOCK_FILE(id)), reason: 'stale-lock' }
    if (options.dryRun || compareAndDelete(this.dir, LOCK_FILE(id), stale) === 'deleted') result.report.push(item)
  }

  #delete(candidate: Candidate, reason: PruneReason, options: ScanOptions, result: ScanResult): void {
    if (!options.prune) return
    const path = this.path(candidate.file)
    const item: PruneItem = { id: candidate.entry.id, cwd: candidate.entry.cwd, path, reason }
    if (options.dryRun) {
      result.report.push(item)
      return
    }
    if (compareAndDelete(this.dir, candidate.file, candidate.bytes) === 'deleted') {
      result.report.push(item)
      result.ended.add(endOf(candidate.entry, 'pruned', reason))
    }
  }
}

// Every entry written on this machine repeats its boot id, host and namespace: one shared string each keeps a
// 10,000-row list about 1 MB smaller (values and key order are unchanged).
function shareMachineStrings(entry: Entry, judge: Judge): void {
  if (entry.bootId === judge.bootId) entry.bootId = judge.bootId
  if (entry.host === judge.host) entry.host = judge.host
  if (entry.pidNamespace === judge.pidNamespace) entry.pidNamespace = judge.pidNamespace
  if (entry.timeNamespace === judge.timeNamespace) entry.timeNamespace = judge.timeNamespace
}

