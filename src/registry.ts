import { linkSync, readdirSync } from 'node:fs'
import { basename, join, sep } from 'node:path'
import { entryTextProblem, isKnownField, parseEntry, serializeEntry, type Entry } from './entry.js'
import { RegistryError, isErrno } from './errors.js'
import { probeUrls, type Health } from './health.js'
import { captureIdentity, inspectProcess } from './identity.js'
import { pickWinner, upgradeLegacy, type Candidate } from './legacy.js'
import { ENTRY_NAME, ID_PATTERN, TEMP_NAME, absoluteDir, canonicalCwd, defaultRegistryDir, idOfCanonical } from './paths.js'
import { Judge, isPrunable, type Status, type StatusReason } from './status.js'
import { claimWorkspace, type Claim, type ClaimInput } from './claim.js'
import { LOCK_FILE, LOCK_FILE_NAME, LOCK_TEMP_NAME, acquireLock, staleLockRecord, type LockOptions } from './lock.js'
import { reapEntry, type ReapOptions, type ReapResult } from './reap.js'
import { checkDir, compareAndDelete, createExclusive, ensureDir, quarantine, readEntryFile, readEntryView, sweepTemp, unlinkQuiet, writeAtomic } from './store.js'
import { RegistryWatcher, type WatchOptions } from './watch.js'

/** Options of a {@link Registry}. */
export interface RegistryOptions {
  /**
   * The registry folder. Must be absolute.
   * @default env `<APP>_REGISTRY_DIR`, else `$XDG_STATE_HOME/<app>/workspaces`, else `~/.local/state/<app>/workspaces`
   */
  dir?: string
  /**
   * Name of the application whose registry this is; picks the default folder.
   * @default 'wsreg'
   */
  app?: string
  /**
   * A file that must exist inside a workspace root for the workspace to count as present
   * (e.g. `.git`); without it a running owner is an orphan.
   * @default undefined (only the folder itself must exist)
   */
  marker?: string
}

/** What {@link Registry.write} records. */
export interface WriteInput {
  /** Workspace root; canonicalized. */
  cwd: string
  /**
   * Human label.
   * @default basename of cwd
   */
  name?: string
  /**
   * Owner process; 0 records an idle workspace.
   * @default process.pid
   */
  pid?: number
  /** Service endpoint of the workspace. */
  url?: string
  /** App-defined data, stored verbatim (must be JSON). */
  meta?: Record<string, unknown>
}

/** A listed workspace with what the registry knows about it. */
export type EntryInfo = EntryRow | CorruptRow

/** A readable entry with its status. */
export type EntryRow = Entry & {
  /** The entry's status from the truth table. */
  status: Status
  /** Why the entry has its status (`exited`, `pid-reused`, `cwd-missing`, …), or null. */
  reason: StatusReason | null
  /** The entry file. */
  path: string
  /** Last modification of the entry file (ISO-8601). */
  mtime: string
  /** URL reachability, with `probe: true` and a `url`. */
  health?: Health
}

/** A file that has an entry's name but is not a readable entry (only with `all: true`). */
export interface CorruptRow {
  /** Always `corrupt`: tells these rows apart from {@link EntryRow}s. */
  status: 'corrupt'
  /** Workspace id from the file name. */
  id: string
  /** The file. */
  path: string
  /** Last modification of the file (ISO-8601), when it could be read. */
  mtime: string | null
  /** What is wrong with it. */
  problem: string
}

/** Why {@link Registry.prune} took a file away. */
export type PruneReason = StatusReason | 'legacy-duplicate' | 'legacy-migrated' | 'corrupt' | 'stale-temp' | 'stale-lock' | 'restored'

/** One file {@link Registry.prune} (or a self-pruning read) removed, moved or would have. */
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

/** What {@link Registry.prune} did (or, with `dryRun`, would do). */
export type PruneReport = PruneItem[]

interface CorruptFile {
  id: string
  file: string
  problem: string
  mtimeMs: number | null
}

interface ScanOptions {
  /** Delete dead and gone entries, migrate legacy files, sweep stale temp files. */
  prune: boolean
  /** Report only: change nothing on disk. */
  dryRun?: boolean
  /** Keep the judged bytes of returned rows (a later compare-and-delete needs them); lists drop them to stay small. */
  keepBytes?: boolean
  /** Move corrupt files into `.quarantine/`. */
  quarantine?: boolean
}

interface ScanResult {
  rows: Candidate[]
  dead: Candidate[]
  corrupt: CorruptFile[]
  report: PruneItem[]
}

/** A temp file older than this is a crashed writer's debris. */
export const STALE_TEMP_MS = 60_000
/** A file a compare-and-delete took aside: `<entry name>.cad-<deleter pid>-…`. */
const CAD_ASIDE = /^([0-9a-f]{16})((?:-[0-9]+)?\.json)\.cad-([0-9]+)-/
const DEFAULT_APP = 'wsreg'
const NO_BYTES = Buffer.alloc(0)

function byNameThenCwd(a: Candidate, b: Candidate): number {
  const x = a.entry
  const y = b.entry
  if (x.name !== y.name) return x.name < y.name ? -1 : 1
  return x.cwd < y.cwd ? -1 : x.cwd > y.cwd ? 1 : 0
}

function checkInput(input: WriteInput): void {
  if (typeof input !== 'object' || input === null) throw new RegistryError('E_INVALID', 'write() needs an object such as { cwd: "/path/to/workspace" }.')
  if (input.pid !== undefined && !(Number.isSafeInteger(input.pid) && input.pid >= 0 && input.pid <= 2 ** 31 - 1)) {
    throw new RegistryError('E_INVALID', `Invalid pid ${String(input.pid)}: pass a non-negative integer (0 for an idle workspace).`)
  }
  if (input.name !== undefined && (typeof input.name !== 'string' || input.name.length > 4096)) {
    throw new RegistryError('E_INVALID', 'Invalid name: pass a string of at most 4096 characters.')
  }
  if (input.url !== undefined && (typeof input.url !== 'string' || input.url.length > 4096)) {
    throw new RegistryError('E_INVALID', 'Invalid url: pass a string such as "http://127.0.0.1:3000".')
  }
  if (input.meta !== undefined && (typeof input.meta !== 'object' || input.meta === null || Array.isArray(input.meta))) {
    throw new RegistryError('E_INVALID', 'Invalid meta: pass a plain JSON object.')
  }
}

/** A registry folder: one `<id>.json` per workspace. Every method is safe against concurrent writers and crashes. */
export class Registry {
  /** The registry folder (absolute). */
  readonly dir: string
  /** The application name the folder was derived from. */
  readonly app: string
  /** File that must exist in a workspace root, if configured. */
  readonly marker: string | undefined
  readonly #prefix: string

  constructor(options: RegistryOptions = {}) {
    this.app = options.app ?? DEFAULT_APP
    this.dir = options.dir !== undefined ? absoluteDir(options.dir, 'options.dir') : defaultRegistryDir(this.app)
    this.marker = options.marker
    this.#prefix = this.dir.endsWith(sep) ? this.dir : this.dir + sep
  }

  // `dir` is resolved and file names are plain, so concatenation is what path.join would return, without its normalizing pass per file.
  #path(file: string): string {
    return this.#prefix + file
  }

  /** Path of the entry file of `cwd` (whether or not it exists). */
  entryPath(cwd: string): string {
    return this.#path(`${idOfCanonical(canonicalCwd(cwd))}.json`)
  }

  /** Record a workspace (last writer wins). Keeps `startedAt` when the same process rewrites its own entry. */
  async write(input: WriteInput): Promise<Entry> {
    checkInput(input)
    const cwd = canonicalCwd(input.cwd)
    const pid = input.pid ?? process.pid
    const entry = this.#compose(cwd, pid, input)
    let text: string
    try {
      text = serializeEntry(entry)
    } catch (error) {
      throw new RegistryError('E_INVALID', `Invalid meta: it cannot be stored as JSON (${(error as Error).message}); pass plain, acyclic JSON data.`)
    }
    // A file every reader would call corrupt must not be written in the first place.
    const problem = entryTextProblem(text)
    if (problem) throw new RegistryError('E_INVALID', `The entry of ${cwd} ${problem}: keep meta small and shallow.`)
    ensureDir(this.dir)
    writeAtomic(this.dir, `${entry.id}.json`, text)
    return entry
  }

  #compose(cwd: string, pid: number, input: Omit<WriteInput, 'cwd'>): Entry {
    const id = idOfCanonical(cwd)
    const probe = pid > 0 ? inspectProcess(pid) : null
    if (probe && (probe.state === 'gone' || probe.state === 'zombie')) {
      throw new RegistryError('E_INVALID', `Process ${pid} is not running: pass the pid of a live process, or 0 for an idle workspace.`)
    }
    const identity = captureIdentity(pid, probe)
    const previous = this.#readCanonical(id)?.entry
    const sameOwner =
      previous !== undefined &&
      previous.pid === pid &&
      previous.pidStartTime === identity.pidStartTime &&
      previous.bootId === identity.bootId &&
      previous.host === identity.host
    const now = new Date().toISOString()
    const entry: Record<string, unknown> = {
      version: 1,
      id,
      cwd,
      name: input.name ?? (basename(cwd) || cwd),
      pid,
      pidStartTime: identity.pidStartTime,
      bootId: identity.bootId,
      host: identity.host,
      pidNamespace: identity.pidNamespace,
    }
    if (input.url !== undefined) entry.url = input.url
    entry.startedAt = sameOwner ? previous.startedAt : now
    entry.updatedAt = now
    if (input.meta !== undefined) entry.meta = input.meta
    // Fields of a newer schema survive our rewrite.
    if (previous) {
      for (const key of Object.keys(previous)) {
        if (!isKnownField(key)) {
          Object.defineProperty(entry, key, { value: (previous as unknown as Record<string, unknown>)[key], enumerable: true, writable: true, configurable: true })
        }
      }
    }
    return entry as unknown as Entry
  }

  /** Register `cwd` as idle (pid 0), unless a running owner is recorded: then that entry is returned untouched. */
  async register(cwd: string, name?: string): Promise<Entry> {
    const canonical = canonicalCwd(cwd)
    const id = idOfCanonical(canonical)
    for (let attempt = 0; attempt < 16; attempt++) {
      const current = this.#resolve(id, { prune: true })
      if (current && current.entry.pid !== 0) return current.entry
      const entry = this.#compose(canonical, 0, { name: name ?? current?.entry.name })
      ensureDir(this.dir)
      // Replace only the version judged idle (or nothing): a live owner landing meanwhile wins.
      if (current && !current.legacy && compareAndDelete(this.dir, current.file, current.bytes) === 'changed') continue
      if (createExclusive(this.dir, `${id}.json`, serializeEntry(entry))) return entry
    }
    throw new RegistryError('E_LOCKED', `Workspace ${canonical} is being rewritten by others without pause; try again.`)
  }

  /** The entry of `cwd`, or undefined. Deletes it when dead or gone; migrates legacy files. */
  async read(cwd: string): Promise<Entry | undefined> {
    return this.#resolve(idOfCanonical(canonicalCwd(cwd)), { prune: true })?.entry
  }

  /** The entry with workspace id `id` (16 hex chars), like {@link Registry.read}. */
  async readId(id: string): Promise<Entry | undefined> {
    return this.#resolve(checkId(id), { prune: true })?.entry
  }

  /** Idle, alive, orphan and unknown entries sorted by name then cwd; dead and gone ones are deleted (not with `prune: false`). */
  async list(options: { prune?: boolean } = {}): Promise<Entry[]> {
    return this.#scan({ prune: options.prune ?? true }).rows.map((row) => row.entry)
  }

  /** The rows of {@link Registry.list} with status, file path and mtime; `all` adds dead, gone and corrupt rows; `probe` adds URL health. */
  async listInfo(options: { probe?: boolean; all?: boolean; prune?: boolean; probeTimeoutMs?: number } = {}): Promise<EntryInfo[]> {
    const scan = this.#scan({ prune: options.prune ?? true })
    const rows: EntryRow[] = scan.rows.map((row) => this.#info(row))
    if (options.all) {
      rows.push(...scan.dead.sort(byNameThenCwd).map((row) => this.#info(row)))
    }
    if (options.probe) {
      const health = await probeUrls(rows.map((row) => (row.url && row.status !== 'dead' && row.status !== 'gone' ? row.url : undefined)), {
        timeoutMs: options.probeTimeoutMs,
      })
      rows.forEach((row, index) => {
        const value = health[index]
        if (value) row.health = value
      })
    }
    const infos: EntryInfo[] = rows
    if (options.all) {
      for (const file of scan.corrupt) {
        infos.push({
          status: 'corrupt',
          id: file.id,
          path: this.#path(file.file),
          mtime: file.mtimeMs === null ? null : new Date(file.mtimeMs).toISOString(),
          problem: file.problem,
        })
      }
    }
    return infos
  }

  #info(row: Candidate): EntryRow {
    return {
      ...row.entry,
      status: row.verdict.status,
      reason: row.verdict.reason,
      path: this.#path(row.file),
      mtime: new Date(row.mtimeMs).toISOString(),
    }
  }

  /**
   * Remove the entry of `cwd` (canonical and legacy files). With `ifPid`, only files recorded for that
   * pid go (compare-and-delete). Returns true when something was removed.
   */
  async remove(cwd: string, options: { ifPid?: number } = {}): Promise<boolean> {
    return this.removeId(idOfCanonical(canonicalCwd(cwd)), options)
  }

  /** {@link Registry.remove} by workspace id. */
  async removeId(id: string, options: { ifPid?: number } = {}): Promise<boolean> {
    checkId(id)
    if (!checkDir(this.dir)) return false
    let removed = false
    for (const file of this.#filesOf(id)) {
      const read = readEntryFile(this.#path(file))
      if (read.kind !== 'ok') continue // corrupt files are never deleted, only quarantined by prune
      const parsed = parseEntry(read.bytes, id, { legacy: file !== `${id}.json`, localHost: '' })
      if (!parsed.ok) continue
      if (options.ifPid !== undefined && parsed.entry.pid !== options.ifPid) continue
      // A version written after our read is newer than this remove: it stands.
      if (compareAndDelete(this.dir, file, read.bytes) === 'deleted') removed = true
    }
    return removed
  }

  /** Delete dead and gone entries, fold legacy files, quarantine corrupt files, sweep stale temp files. */
  async prune(options: { dryRun?: boolean } = {}): Promise<PruneReport> {
    return this.#scan({ prune: true, dryRun: options.dryRun ?? false, quarantine: true }).report
  }

  /**
   * Watch the folder: `up`, `down` (with a reason), `change`, `ready` and `error` events, also as an
   * async iterable. Works before the folder exists; never prunes. Close it with `close()` or `signal`.
   */
  watch(options: WatchOptions = {}): RegistryWatcher {
    checkDir(this.dir)
    return new RegistryWatcher({ dir: this.dir, marker: this.marker }, options)
  }

  /** Entry files of `id`: the canonical one first, then legacy ones (needs a folder scan). */
  #filesOf(id: string): string[] {
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

  #readCanonical(id: string): Candidate | undefined {
    const file = `${id}.json`
    const read = readEntryFile(this.#path(file))
    if (read.kind !== 'ok') return undefined
    const parsed = parseEntry(read.bytes, id)
    if (!parsed.ok) return undefined
    return { file, legacy: false, bytes: read.bytes, entry: parsed.entry, mtimeMs: read.mtimeMs, verdict: { status: 'unknown', reason: null } }
  }

  /** The winning candidate of one workspace; O(1) when its canonical file holds a current entry. */
  #resolve(id: string, options: ScanOptions): Candidate | undefined {
    if (!checkDir(this.dir)) return undefined
    const judge = new Judge(this.marker)
    const canonical = this.#readCanonical(id)
    if (canonical) {
      canonical.verdict = judge.judge(canonical.entry, canonical.mtimeMs)
      if (!isPrunable(canonical.verdict.status)) return canonical
    }
    const result: ScanResult = { rows: [], dead: [], corrupt: [], report: [] }
    this.#resolveGroup(id, this.#filesOf(id), judge, { ...options, keepBytes: true }, result)
    return result.rows[0]
  }

  #scan(options: ScanOptions): ScanResult {
    const result: ScanResult = { rows: [], dead: [], corrupt: [], report: [] }
    if (!checkDir(this.dir)) return result
    let names: string[]
    try {
      names = readdirSync(this.dir)
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return result
      throw error
    }
    // Almost every workspace has one file: keep its name as is and make an array only for legacy groups.
    const groups = new Map<string, string | string[]>()
    const temps: string[] = []
    const locks: string[] = []
    for (const name of names) {
      const match = ENTRY_NAME.exec(name)
      if (match) {
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
    const judge = new Judge(this.marker)
    const debris: string[] = []
    for (const name of options.prune ? temps : []) {
      const handled = this.#restoreAside(name, judge, options, result)
      if (handled === false) debris.push(name)
      // A restored entry is listed like any other (it was not in the folder when it was read).
      if (typeof handled === 'string' && !groups.has(handled.slice(0, 16))) groups.set(handled.slice(0, 16), handled)
    }
    for (const [id, files] of groups) this.#resolveGroup(id, typeof files === 'string' ? [files] : files, judge, options, result)
    if (options.prune) {
      const now = Date.now()
      for (const name of debris) {
        if (sweepTemp(this.dir, name, now, STALE_TEMP_MS, options.dryRun ?? false)) {
          result.report.push({ id: name.slice(0, 16), cwd: null, path: this.#path(name), reason: 'stale-temp' })
        }
      }
      for (const name of locks) this.#dropStaleLockRecord(name.slice(0, 16), options, result)
    }
    if (options.quarantine) {
      for (const file of result.corrupt) {
        const quarantinedTo = options.dryRun ? null : quarantine(this.dir, file.file)
        result.report.push({ id: file.id, cwd: null, path: this.#path(file.file), reason: 'corrupt', problem: file.problem, quarantinedTo })
      }
    }
    result.rows.sort(byNameThenCwd)
    return result
  }

  /** Judge every file of one workspace, pick the one that speaks for it, and (when pruning) clean up the rest. */
  #resolveGroup(id: string, files: string[], judge: Judge, options: ScanOptions, result: ScanResult): void {
    // A lone file (nearly every workspace) may keep its bytes as a view of the read buffer: nothing reads another
    // entry file before its group is settled, and no candidate leaves the group holding the view.
    const view = files.length === 1 && !options.keepBytes
    const candidates: Candidate[] = []
    for (const file of files) {
      const legacy = file.length !== 21 // `<16 hex>.json`
      const read = readEntryView(this.#path(file))
      if (read.kind === 'missing') continue
      if (read.kind === 'corrupt') {
        result.corrupt.push({ id, file, problem: read.problem, mtimeMs: read.mtimeMs })
        continue
      }
      const parsed = parseEntry(read.bytes, id, { legacy, localHost: judge.host })
      if (!parsed.ok) {
        result.corrupt.push({ id, file, problem: parsed.problem, mtimeMs: read.mtimeMs })
        continue
      }
      shareMachineStrings(parsed.entry, judge)
      const verdict = judge.judge(parsed.entry, read.mtimeMs)
      const bytes = view ? read.bytes : Buffer.from(read.bytes)
      candidates.push({ file, legacy, bytes, entry: parsed.entry, mtimeMs: read.mtimeMs, verdict })
    }
    this.#settleGroup(candidates, judge, options, result)
    if (view) for (const candidate of candidates) candidate.bytes = NO_BYTES
  }

  /** Pick the candidate that speaks for a workspace and (when pruning) clean up the rest. */
  #settleGroup(candidates: Candidate[], judge: Judge, options: ScanOptions, result: ScanResult): void {
    const winner = pickWinner(candidates)
    if (!winner) return
    if (isPrunable(winner.verdict.status)) {
      for (const candidate of candidates) {
        result.dead.push(candidate)
        this.#delete(candidate, candidate.verdict.reason ?? 'exited', options, result)
      }
      return
    }
    let row = winner
    if (winner.legacy && options.prune) row = this.#migrate(winner, candidates, judge, options, result) ?? winner
    for (const candidate of candidates) {
      if (candidate === winner || candidate.file === row.file) continue
      if (isPrunable(candidate.verdict.status)) result.dead.push(candidate)
      this.#delete(candidate, isPrunable(candidate.verdict.status) ? (candidate.verdict.reason ?? 'exited') : 'legacy-duplicate', options, result)
    }
    if (!options.keepBytes) row.bytes = NO_BYTES
    result.rows.push(row)
  }

  /** Move a legacy winner into `<id>.json`; undefined when a concurrent writer got there first. */
  #migrate(winner: Candidate, candidates: Candidate[], judge: Judge, options: ScanOptions, result: ScanResult): Candidate | undefined {
    const file = `${winner.entry.id}.json`
    const upgraded = upgradeLegacy(winner.entry, judge.probe(winner.entry.pid), judge.bootId)
    const data = serializeEntry(upgraded)
    const migrated: Candidate = { ...winner, file, legacy: false, entry: upgraded, bytes: Buffer.from(data) }
    if (options.dryRun) {
      result.report.push({ id: upgraded.id, cwd: upgraded.cwd, path: this.#path(winner.file), reason: 'legacy-migrated' })
      return migrated
    }
    try {
      const current = candidates.find((candidate) => !candidate.legacy)
      if (current) {
        const outcome = compareAndDelete(this.dir, current.file, current.bytes)
        if (outcome === 'changed' || outcome === 'read-only') return undefined
        if (outcome === 'deleted' && isPrunable(current.verdict.status)) result.dead.push(current)
      }
      if (!createExclusive(this.dir, file, data)) return undefined
    } catch (error) {
      if (isErrno(error, 'EACCES', 'EPERM', 'EROFS')) return undefined
      throw error
    }
    if (compareAndDelete(this.dir, winner.file, winner.bytes) === 'deleted') {
      result.report.push({ id: upgraded.id, cwd: upgraded.cwd, path: this.#path(winner.file), reason: 'legacy-migrated' })
    }
    return migrated
  }

  /** Live entries whose workspace is gone: folder missing, in the Trash, or the configured marker missing. */
  async orphans(): Promise<EntryRow[]> {
    return (await this.listInfo()).filter((row): row is EntryRow => row.status === 'orphan')
  }

  /**
   * Take the exclusive, kernel-held lock of workspace `cwd` (freed at once if this process dies, even by SIGKILL).
   * Resolves to `release()`; throws `E_LOCKED` with `details.holder` ({ pid, host, since }, when known) if held.
   */
  async lock(cwd: string, options: LockOptions = {}): Promise<() => Promise<void>> {
    const held = await acquireLock(this.dir, cwd, options)
    return () => held.release()
  }

  /** Stop the process of a workspace (SIGTERM, grace, SIGKILL; identity re-checked before each signal) and delete its entry. */
  async reap(cwdOrEntry: string | Entry, options: ReapOptions = {}): Promise<ReapResult> {
    const entry = typeof cwdOrEntry === 'string' ? await this.read(cwdOrEntry) : cwdOrEntry
    if (!entry) throw new RegistryError('E_NOT_FOUND', `No workspace ${canonicalCwd(cwdOrEntry as string)} in ${this.dir}: see \`wsreg ls\`.`)
    return reapEntry(this.dir, this.marker, entry, options)
  }

  /** Write an entry owned by this process (or `input.pid`) and remove it on exit; see {@link Claim}. */
  async claim(input: ClaimInput): Promise<Claim> {
    return claimWorkspace(this, input)
  }

  /** A lock side file left by a SIGKILLed holder would otherwise stay forever (only messages ever read it). */
  /**
   * A compare-and-delete killed between taking a file aside and putting it back leaves the file under a
   * private name. If that was a newer live version, sweeping it would lose the entry: put it back instead
   * (link fails when a still newer version exists, which then stands). The deleter's pid is in the name, so
   * this needs no age: while the deleter runs (or is us) the aside is its own to settle, and is left alone —
   * a rename keeps the old mtime, so the age rule must never judge an aside. Returns the entry file name when
   * it was put back, true when the aside was otherwise dealt with, false when it is ordinary debris.
   */
  #restoreAside(name: string, judge: Judge, options: ScanOptions, result: ScanResult): string | boolean {
    const match = CAD_ASIDE.exec(name)
    if (!match) return false
    const deleter = judge.probe(Number(match[3])).state
    if (deleter !== 'gone' && deleter !== 'zombie') return true
    const id = match[1] as string
    const file = `${id}${match[2]}`
    const read = readEntryFile(this.#path(name))
    if (read.kind !== 'ok') return false
    const parsed = parseEntry(read.bytes, id, { legacy: file.length !== 21, localHost: judge.host })
    if (!parsed.ok || isPrunable(judge.judge(parsed.entry, read.mtimeMs).status)) return false
    const item: PruneItem = { id, cwd: parsed.entry.cwd, path: this.#path(file), reason: 'restored' }
    if (options.dryRun) {
      result.report.push(item)
      return true
    }
    let restored = false
    try {
      linkSync(this.#path(name), this.#path(file))
      result.report.push(item)
      restored = true
    } catch (error) {
      if (!isErrno(error, 'EEXIST')) throw error
      result.report.push({ ...item, path: this.#path(name), reason: 'stale-temp' })
    }
    unlinkQuiet(this.#path(name))
    return restored ? file : true
  }

  #dropStaleLockRecord(id: string, options: ScanOptions, result: ScanResult): void {
    const stale = staleLockRecord(this.dir, id)
    if (!stale) return
    const item: PruneItem = { id, cwd: null, path: join(this.dir, LOCK_FILE(id)), reason: 'stale-lock' }
    if (options.dryRun || compareAndDelete(this.dir, LOCK_FILE(id), stale) === 'deleted') result.report.push(item)
  }

  #delete(candidate: Candidate, reason: PruneReason, options: ScanOptions, result: ScanResult): void {
    if (!options.prune) return
    const path = this.#path(candidate.file)
    const item: PruneItem = { id: candidate.entry.id, cwd: candidate.entry.cwd, path, reason }
    if (options.dryRun) {
      result.report.push(item)
      return
    }
    if (compareAndDelete(this.dir, candidate.file, candidate.bytes) === 'deleted') result.report.push(item)
  }
}

// Every entry written on this machine repeats its boot id, host and namespace: one shared string each keeps a
// 10,000-row list about 1 MB smaller (values and key order are unchanged).
function shareMachineStrings(entry: Entry, judge: Judge): void {
  if (entry.bootId === judge.bootId) entry.bootId = judge.bootId
  if (entry.host === judge.host) entry.host = judge.host
  if (entry.pidNamespace === judge.pidNamespace) entry.pidNamespace = judge.pidNamespace
}

function checkId(id: string): string {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw new RegistryError('E_INVALID', `Invalid workspace id ${JSON.stringify(id)}: an id is 16 lowercase hex characters (see \`wsreg ls\`).`)
  }
  return id
}
