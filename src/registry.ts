import { basename } from 'node:path'
import { entryTextProblem, isKnownField, parseEntry, sameProcess, serializeEntry, type Entry } from './entry.js'
import { RegistryError } from './errors.js'
import { probeUrls, type Health } from './health.js'
import { readHistory, recordEnd, type HistoryRecord } from './history.js'
import { captureIdentity, inspectProcess } from './identity.js'
import type { Candidate } from './legacy.js'
import { ID_PATTERN, QUARANTINE_DIR, absoluteDir, canonicalCwd, defaultRegistryDir, idOfCanonical, recordableCwd } from './paths.js'
import type { Status, StatusReason } from './status.js'
import { claimWorkspace, type Claim, type ClaimInput, type ClaimOptions } from './claim.js'
import { acquireLock, type LockOptions } from './lock.js'
import { reapEntry, type ReapOptions, type ReapResult } from './reap.js'
import { checkDir, compareAndDelete, compareAndSwap, createExclusive, ensureDir, readEntryFile, writeAtomic } from './store.js'
import { Folder, byNameThenCwd, type PruneReport } from './scan.js'
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
  /**
   * How long past its lease (`claim({ leaseMs })`) an entry that cannot be judged here (another host, another PID
   * namespace, an unreadable identity) is kept before it counts as dead; covers clock skew between the writers.
   * @default 10000
   */
  leaseGraceMs?: number
}

/** Which records {@link Registry.history} returns. */
export interface HistoryOptions {
  /** Only ends of this workspace (canonicalized, so a symlink or a trailing slash names the same one). */
  cwd?: string | undefined
  /** Only ends of the workspace with this id (16 hex chars); an alternative to `cwd`. */
  id?: string | undefined
  /** Only ends at or after this time. */
  since?: Date | undefined
  /**
   * At most this many records, the newest.
   * @default unlimited (history holds at most ~2 MiB of records)
   */
  limit?: number | undefined
}

/** What {@link Registry.write} records. */
export interface WriteInput {
  /** Workspace root; canonicalized. */
  cwd: string
  /**
   * Human label.
   * @default basename of cwd
   */
  name?: string | undefined
  /**
   * Owner process; 0 records an idle workspace.
   * @default process.pid
   */
  pid?: number | undefined
  /** Service endpoint of the workspace. */
  url?: string | undefined
  /** App-defined data, stored verbatim (must be JSON). */
  meta?: Record<string, unknown> | undefined
}

/** Options of {@link Registry.listInfo}. */
export interface ListInfoOptions {
  /**
   * Add `health` (URL reachability) to rows with a `url`.
   * @default false
   */
  probe?: boolean | undefined
  /**
   * Also return dead, gone and corrupt rows (then rows are {@link EntryInfo}: narrow on `status`).
   * @default false
   */
  all?: boolean | undefined
  /**
   * Delete dead and gone entries as they are found.
   * @default true
   */
  prune?: boolean | undefined
  /**
   * How long one URL probe may take.
   * @default 1000
   */
  probeTimeoutMs?: number | undefined
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

const DEFAULT_APP = 'wsreg'


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
  readonly #folder: Folder

  constructor(options: RegistryOptions = {}) {
    this.app = options.app ?? DEFAULT_APP
    this.dir = options.dir !== undefined ? absoluteDir(options.dir, 'options.dir') : defaultRegistryDir(this.app)
    this.marker = options.marker
    const grace = options.leaseGraceMs
    if (grace !== undefined && !(Number.isFinite(grace) && grace >= 0)) {
      throw new RegistryError('E_INVALID', `Invalid leaseGraceMs ${String(grace)}: pass a number of milliseconds ≥ 0.`)
    }
    this.#folder = new Folder(this.dir, this.marker, grace)
  }

  /** Path of the entry file of `cwd` (whether or not it exists). */
  entryPath(cwd: string): string {
    return this.#folder.path(`${idOfCanonical(canonicalCwd(cwd))}.json`)
  }

  /** Record a workspace (last writer wins). Keeps `startedAt` when the same process rewrites its own entry. */
  async write(input: WriteInput): Promise<Entry> {
    return this.#write(input)
  }

  /** {@link Registry.write}; with `replacing`, only over exactly those bytes (or nothing), else `E_LOCKED` (a claim's update). */
  #write(input: WriteInput & { leaseUntil?: string }, replacing?: Buffer): Entry {
    checkInput(input)
    const cwd = recordableCwd(input.cwd)
    const pid = input.pid ?? process.pid
    // An entry file that cannot be read proves nothing: fail rather than write blind over it (or move it away).
    const previous = this.#folder.readCanonical(idOfCanonical(cwd), true)?.entry
    const entry = this.#compose(cwd, pid, input, previous)
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
    // Last writer wins, but a corrupt file in the way is evidence: it goes to quarantine, never under a rename.
    if (!previous) this.#folder.quarantineCorrupt(entry.id)
    if (replacing === undefined) writeAtomic(this.dir, `${entry.id}.json`, text)
    else if (compareAndSwap(this.dir, `${entry.id}.json`, replacing, text) === 'changed') {
      throw new RegistryError('E_LOCKED', `Workspace ${cwd} has been claimed by another process since; this claim no longer owns it.`, { cwd })
    }
    return entry
  }

  #compose(cwd: string, pid: number, input: Omit<WriteInput, 'cwd'> & { leaseUntil?: string }, previous: Entry | undefined): Entry {
    const id = idOfCanonical(cwd)
    const probe = pid > 0 ? inspectProcess(pid) : null
    if (probe && (probe.state === 'gone' || probe.state === 'zombie')) {
      throw new RegistryError('E_INVALID', `Process ${pid} is not running: pass the pid of a live process, or 0 for an idle workspace.`)
    }
    const identity = captureIdentity(pid, probe)
    const sameOwner = previous !== undefined && sameProcess(previous, { pid, ...identity })
    const now = new Date().toISOString()
    const entry: Record<string, unknown> = {
      // A newer schema's file keeps its version: its fields survive below, so relabelling it 1 would misdescribe them.
      version: Math.max(1, previous?.version ?? 1),
      id,
      cwd,
      name: input.name ?? (basename(cwd) || cwd),
      pid,
      pidStartTime: identity.pidStartTime,
      bootId: identity.bootId,
      host: identity.host,
      pidNamespace: identity.pidNamespace,
      timeNamespace: identity.timeNamespace,
    }
    if (input.url !== undefined) entry.url = input.url
    entry.startedAt = sameOwner ? previous.startedAt : now
    entry.updatedAt = now
    if (input.meta !== undefined) entry.meta = input.meta
    if (input.leaseUntil !== undefined) entry.leaseUntil = input.leaseUntil
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
    const canonical = recordableCwd(cwd)
    const id = idOfCanonical(canonical)
    for (let attempt = 0; attempt < 16; attempt++) {
      const current = this.#folder.resolve(id, { prune: true, strict: true })
      if (current && current.entry.pid !== 0) return current.entry
      const entry = this.#compose(canonical, 0, { name: name ?? current?.entry.name }, current?.entry)
      ensureDir(this.dir)
      // Replace only the version judged idle (or nothing): a live owner landing meanwhile wins.
      if (createExclusive(this.dir, `${id}.json`, serializeEntry(entry), current && !current.legacy ? current.bytes : undefined)) return entry
      // Something that is no readable entry is in the way: a corrupt file goes to quarantine (compare-and-move), as write() does.
      this.#folder.quarantineCorrupt(id)
    }
    const stuck = this.#folder.corruptProblem(id)
    if (stuck) {
      throw new RegistryError('E_CORRUPT', `Entry file ${this.#folder.path(`${id}.json`)} ${stuck} and could not be moved to ${QUARANTINE_DIR}/: move it away by hand.`)
    }
    throw new RegistryError('E_LOCKED', `Workspace ${canonical} is being rewritten by others without pause; try again.`)
  }

  /** The entry of `cwd`, or undefined. Deletes it when dead or gone; migrates legacy files. */
  async read(cwd: string): Promise<Entry | undefined> {
    return this.#folder.resolve(idOfCanonical(canonicalCwd(cwd)), { prune: true })?.entry
  }

  /** The entry with workspace id `id` (16 hex chars), like {@link Registry.read}. */
  async readId(id: string): Promise<Entry | undefined> {
    return this.#folder.resolve(checkId(id), { prune: true })?.entry
  }

  /** Idle, alive, orphan and unknown entries sorted by name then cwd; dead and gone ones are deleted (not with `prune: false`). */
  async list(options: { prune?: boolean } = {}): Promise<Entry[]> {
    return this.#folder.scan({ prune: options.prune ?? true }).rows.map((row) => row.entry)
  }

  /** The rows of {@link Registry.list} with status, file path and mtime; `all` adds dead, gone and corrupt rows; `probe` adds URL health. */
  async listInfo(options?: ListInfoOptions & { all?: false | undefined }): Promise<EntryRow[]>
  async listInfo(options: ListInfoOptions): Promise<EntryInfo[]>
  async listInfo(options: ListInfoOptions = {}): Promise<EntryInfo[]> {
    const scan = this.#folder.scan({ prune: options.prune ?? true, mtimes: true, dead: options.all === true })
    const rows: EntryRow[] = scan.rows.map((row) => this.#info(row))
    if (options.all) {
      // A loop, not push(...rows): spreading an unbounded array overflows the stack (~150k rows).
      for (const row of scan.dead.sort(byNameThenCwd)) rows.push(this.#info(row))
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
      // Unreadable files (EMFILE, EACCES…) are left out: they are not corrupt, and `wsreg doctor` reports them.
      for (const file of scan.corrupt) {
        infos.push({
          status: 'corrupt',
          id: file.id,
          path: this.#folder.path(file.file),
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
      path: this.#folder.path(row.file),
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
    for (const file of this.#folder.filesOf(id)) {
      const read = readEntryFile(this.#folder.path(file))
      if (read.kind !== 'ok') continue // corrupt files are never deleted, only quarantined by prune
      const parsed = parseEntry(read.bytes, id, { legacy: file !== `${id}.json`, localHost: '' })
      if (!parsed.ok) continue
      if (options.ifPid !== undefined && parsed.entry.pid !== options.ifPid) continue
      // A version written after our read is newer than this remove: it stands.
      if (compareAndDelete(this.dir, file, read.bytes) === 'deleted') {
        removed = true
        recordEnd(this.dir, parsed.entry, 'removed', null)
      }
    }
    return removed
  }

  /** Delete dead and gone entries, fold legacy files, quarantine corrupt files, sweep stale temp files. */
  async prune(options: { dryRun?: boolean } = {}): Promise<PruneReport> {
    return this.#folder.scan({ prune: true, dryRun: options.dryRun ?? false, quarantine: true }).report
  }

  /**
   * Watch the folder: `up`, `down` (with a reason), `change`, `ready` and `error` events, also as an
   * async iterable. Works before the folder exists; never prunes. Close it with `close()` or `signal`.
   */
  watch(options: WatchOptions = {}): RegistryWatcher {
    checkDir(this.dir)
    return new RegistryWatcher({ dir: this.dir, marker: this.marker, leaseGraceMs: this.#folder.leaseGraceMs }, options)
  }

  /** Live entries whose workspace is gone: folder missing, in the Trash, or the configured marker missing. */
  async orphans(): Promise<EntryRow[]> {
    return (await this.listInfo()).filter((row) => row.status === 'orphan')
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
    return reapEntry(this.dir, { marker: this.marker, leaseGraceMs: this.#folder.leaseGraceMs }, entry, options)
  }

  /**
   * Evidence of ends: every entry the registry deleted or quarantined (prune, remove, reap, release, migration),
   * newest first. Read from `.history` and its one older generation; a torn line is skipped.
   */
  async history(options: HistoryOptions = {}): Promise<HistoryRecord[]> {
    const since = options.since
    if (since !== undefined && !(since instanceof Date && Number.isFinite(since.getTime()))) throw new RegistryError('E_INVALID', 'Invalid since: pass a valid Date.')
    if (options.limit !== undefined && !(Number.isSafeInteger(options.limit) && options.limit >= 0)) throw new RegistryError('E_INVALID', 'Invalid limit: pass an integer ≥ 0.')
    const id = options.id !== undefined ? checkId(options.id) : options.cwd !== undefined ? idOfCanonical(canonicalCwd(options.cwd)) : undefined
    if (!checkDir(this.dir)) return []
    return readHistory(this.dir, { id, since, limit: options.limit })
  }

  /**
   * Own workspace `input.cwd`: take its lock for the claim's life, write the entry, remove it on exit; see {@link Claim}.
   * Exclusive: while another live process holds it, throws `E_LOCKED` with `details.pid` and `details.entry` of the holder.
   */
  async claim(input: ClaimInput, options: ClaimOptions = {}): Promise<Claim> {
    return claimWorkspace(this, input, options, {
      write: (write, replacing) => this.#write(write, replacing),
      current: (id) => this.#folder.resolve(id, { prune: true })?.entry,
      running: () => this.#folder.scan({ prune: true }).rows.map((row) => row.entry),
    })
  }

}

function checkId(id: string): string {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw new RegistryError('E_INVALID', `Invalid workspace id ${JSON.stringify(id)}: an id is 16 lowercase hex characters (see \`wsreg ls\`).`)
  }
  return id
}
