/**
 * The watcher: one native watch on the registry folder (never one per file), whose events are only hints. A burst
 * of events (temp write, rename) is gathered over one turn of the event loop into one re-read per workspace, diffed
 * against a snapshot into `up`, `down` and `change` ({@link transition}). While the folder is missing or unsafe its
 * nearest existing ancestor is watched instead, and an unsafe folder freezes the snapshot (its entries prove
 * nothing, so no downs) until it is safe again. Where native events are unavailable it polls. A periodic sweep
 * makes up for lost events and for owners that die without touching a file; what each sweep re-checks, and at
 * which cadence, is the resting sweep's business (`sweep.ts`). Sweeps pause every {@link SWEEP_CHUNK} judgements,
 * so file events are never held up long. It never throws at its host and never prunes.
 */
import { EventEmitter, errorMonitor } from 'node:events'
import { lstatSync, watch, type FSWatcher } from 'node:fs'
import { dirname, join } from 'node:path'
import { parseEntry, type Entry } from './entry.js'
import { RegistryError, isErrno } from './errors.js'
import { pickWinner, type Candidate } from './legacy.js'
import { Listing, fileIdentity } from './listing.js'
import { HISTORY_NAME } from './history.js'
import { ENTRY_NAME, TEMP_NAME } from './paths.js'
import { Judge, isRunning, type Verdict } from './status.js'
import { dirProblem, readEntryFile, type FileRead } from './store.js'
import { iterateEvents, type RegistryWatcherEvents } from './events.js'
import { SweepPlan } from './sweep.js'
import { transition, type RegistryEvent, type WatchedEntry } from './transition.js'

/** Options of {@link RegistryWatcher} (`registry.watch(options)`). */
export interface WatchOptions {
  /**
   * How often the sweep runs: each sweep re-checks the folder's safety and every owner's liveness (one
   * `/proc` read per distinct pid; a SIGKILLed owner touches no file), and re-reads the folder listing when
   * the folder changed (when polling, that is how changes are found). Workspace folders (vanished cwd,
   * marker, Trash) are re-checked over 30 sweeps, entry files rewritten in place over 60, and the whole listing
   * at least every 150 sweeps.
   * @default 2000
   */
  intervalMs?: number
  /** Closes the watcher when aborted. */
  signal?: AbortSignal
  /**
   * Report workspaces already running at start as `up` events (before `ready`).
   * @default false
   */
  emitExisting?: boolean
  /**
   * Re-read the folder every `intervalMs` instead of using native file events (network and FUSE
   * filesystems that deliver none). Chosen automatically when native events are unavailable.
   * @default false
   */
  polling?: boolean
  /**
   * Keep the process alive while the watcher is open.
   * @default true
   */
  persistent?: boolean
}


interface Tracked {
  entry: Entry
  verdict: Verdict
  /** File mtime, which judges legacy entries that carry no start identity. */
  mtimeMs: number
}

/** What a watcher holds in memory, and how many sweeps it finished: for tests of its bounds, not a public API. */
export interface WatcherState {
  /** Workspaces in the snapshot. */
  entries: number
  /** Entry files whose identity is remembered. */
  files: number
  /** Workspaces with legacy files remembered. */
  legacy: number
  /** Sweeps finished so far. */
  sweeps: number
  /** Sweeps that re-read the folder listing (the others found the folder unchanged and rested). */
  looks: number
}

/** Read a watcher's {@link WatcherState} (internal: not exported from the package). */
export let watcherState: (watcher: RegistryWatcher) => WatcherState
/** Run a sweep now, as the timer would (internal, for tests that must look between two changes in one clock tick). */
export let sweepNow: (watcher: RegistryWatcher) => Promise<void>

// Sweeps judge this many entries per turn of the event loop, so file events are never held up long.
const SWEEP_CHUNK = 500

// The sweep's cadences live with its rules; tests read them from here.
export { RACY_MS, CWD_SWEEPS, IDENTITY_SWEEPS, LOOK_SWEEPS } from './sweep.js'

/**
 * Watches one registry folder (one native watch on the folder, never one per file) and reports
 * workspaces going up, down and changing. File events are only hints: each one re-reads the entry
 * and diffs it against a snapshot; a periodic sweep re-checks the folder's safety, every entry file's
 * identity when the folder changed (events can be lost) and every owner's liveness, and rests otherwise. Read-only: it never prunes. It never throws
 * at its host: an error with no `'error'` listener reaches only `errorMonitor` listeners.
 */
export class RegistryWatcher extends EventEmitter<RegistryWatcherEvents> implements AsyncIterable<RegistryEvent> {
  /** The registry folder being watched. */
  readonly dir: string
  readonly #marker: string | undefined
  readonly #leaseGraceMs: number | undefined
  readonly #intervalMs: number
  readonly #emitExisting: boolean
  readonly #persistent: boolean
  readonly #signal: AbortSignal | undefined
  #polling: boolean
  readonly #snapshot = new Map<string, Tracked>()
  readonly #listing = new Listing()
  readonly #pending = new Set<string>()
  #fsWatcher: FSWatcher | undefined
  /** The folder, or while it is missing or unsafe its nearest existing ancestor. */
  #watchedPath: string | undefined
  /** The inode of the folder when last seen safe; undefined while it is missing. */
  #dirIno: number | undefined
  /** In an unsafe episode (reported once): nothing is read and the snapshot is frozen until the folder is safe again. */
  #unsafe = false
  #checkDirSoon = false
  #flushImmediate: NodeJS.Immediate | undefined
  #startImmediate: NodeJS.Immediate | undefined
  #timer: NodeJS.Timeout | undefined
  #sweeping = false
  #ready = false
  #closed = false
  #sweeps = 0
  #looks = 0
  /** What each sweep must re-check: the rest rule, the owners and the rounds. */
  readonly #plan = new SweepPlan(this.#snapshot)
  readonly #onAbort = (): void => void this.close()

  static {
    sweepNow = (watcher) => watcher.#sweep()
    watcherState = (watcher) => ({ entries: watcher.#snapshot.size, ...watcher.#listing.size, sweeps: watcher.#sweeps, looks: watcher.#looks })
  }

  constructor(location: { dir: string; marker?: string | undefined; leaseGraceMs?: number | undefined }, options: WatchOptions = {}) {
    super()
    const intervalMs = options.intervalMs ?? 2000
    if (!Number.isFinite(intervalMs) || intervalMs < 1) {
      throw new RegistryError('E_INVALID', `Invalid intervalMs ${String(options.intervalMs)}: pass a number of milliseconds ≥ 1 (default 2000).`)
    }
    this.dir = location.dir
    this.#marker = location.marker
    this.#leaseGraceMs = location.leaseGraceMs
    this.#intervalMs = intervalMs
    this.#emitExisting = options.emitExisting ?? false
    this.#polling = options.polling ?? false
    this.#persistent = options.persistent ?? true
    this.#signal = options.signal
    if (this.#signal?.aborted) {
      this.#closed = true
      return
    }
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true })
    // Start on a later turn so listeners (and iterators) attached right after watch() see `ready`.
    this.#startImmediate = setImmediate(() => this.#start())
  }

  /** Stop watching; pending iterators end. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#signal?.removeEventListener('abort', this.#onAbort)
    this.#fsWatcher?.close()
    this.#fsWatcher = undefined
    clearInterval(this.#timer)
    clearImmediate(this.#flushImmediate)
    clearImmediate(this.#startImmediate)
    this.emit('close')
  }

  /** Every event as a {@link RegistryEvent}; leaving the loop early closes the watcher. */
  [Symbol.asyncIterator](): AsyncIterator<RegistryEvent> {
    return iterateEvents(this, () => this.#closed)
  }

  #start(): void {
    this.#startImmediate = undefined
    try {
      const judge = new Judge(this.#marker, this.#leaseGraceMs)
      this.#plan.start(judge)
      this.#checkFolder(judge, true)
    } catch (error) {
      this.#fail(error)
    }
    const entries: WatchedEntry[] = []
    for (const tracked of this.#snapshot.values()) {
      const { status, reason } = tracked.verdict
      if (isRunning(status) || status === 'idle') entries.push({ entry: tracked.entry, status, reason })
      if (this.#emitExisting && isRunning(status)) this.emit('up', { type: 'up', entry: tracked.entry, status })
    }
    entries.sort((a, b) => (a.entry.name !== b.entry.name ? (a.entry.name < b.entry.name ? -1 : 1) : a.entry.cwd < b.entry.cwd ? -1 : 1))
    this.#ready = true
    this.#timer = setInterval(() => void this.#sweep(), this.#intervalMs)
    if (!this.#persistent) this.#timer.unref()
    if (!this.#closed) this.emit('ready', { type: 'ready', entries })
  }

  /** Watch the folder, or, while it is missing or unsafe, its nearest existing ancestor (to notice it come or be replaced). */
  #attach(): void {
    this.#fsWatcher?.close()
    this.#fsWatcher = undefined
    this.#watchedPath = undefined
    if (this.#polling) return
    const target = this.#dirIno !== undefined && !this.#unsafe ? this.dir : nearestExisting(this.dir)
    if (target === undefined) return
    try {
      const watcher = watch(target, { persistent: this.#persistent }, (eventType, name) =>
        target === this.dir ? this.#onFileEvent(eventType, name) : this.#onDirEvent(),
      )
      watcher.on('error', () => this.#onDirEvent())
      this.#fsWatcher = watcher
      this.#watchedPath = target
    } catch (error) {
      // No native events here (inotify watches exhausted, an exotic filesystem): poll instead.
      if (!isErrno(error, 'ENOSPC', 'EMFILE', 'ENOSYS', 'EPERM', 'EACCES', 'EINVAL', 'ENOTSUP')) throw error
      this.#polling = true
    }
  }

  #onFileEvent(eventType: string, name: string | Buffer | null): void {
    const file = typeof name === 'string' ? name : name?.toString('utf8')
    const match = file === undefined ? null : ENTRY_NAME.exec(file)
    if (file === undefined) {
      this.#checkDirSoon = true // an event without a name: re-read everything (a lost event has no callback at all: the sweep)
    } else if (match) {
      const id = match[1] as string
      if (match[2] !== undefined) this.#listing.addLegacy(id, file)
      this.#pending.add(id)
    } else if (eventType === 'rename' && !TEMP_NAME.test(file) && !HISTORY_NAME.test(file)) {
      // Temp, lock, history and quarantine names are ignored; another rename may be the folder itself going away.
      this.#checkDirSoon = true
    } else {
      return
    }
    this.#scheduleFlush()
  }

  #onDirEvent(): void {
    this.#checkDirSoon = true
    this.#scheduleFlush()
  }

  #scheduleFlush(): void {
    if (this.#flushImmediate || this.#closed || !this.#ready) return
    // One turn of the loop gathers a burst (temp write, rename) into one re-read per workspace.
    this.#flushImmediate = setImmediate(() => {
      this.#flushImmediate = undefined
      try {
        const judge = new Judge(this.#marker, this.#leaseGraceMs)
        const reread = this.#checkDirSoon
        this.#checkDirSoon = false
        const ids = [...this.#pending]
        this.#pending.clear()
        // While the folder is unsafe the hints are dropped: the look after it is safe again re-reads what changed.
        if (!this.#checkFolder(judge, reread)) return
        for (const id of ids) this.#refresh(id, judge)
      } catch (error) {
        this.#fail(error)
      }
    })
  }

  /**
   * Look at the folder: notice it appearing, vanishing, being replaced or turning unsafe, and re-read it when
   * asked or when it changed. False while it is unsafe: then nothing is read, so the snapshot stays as it was.
   */
  #checkFolder(judge: Judge, reread: boolean): boolean {
    const stat = this.#plan.statFolder(this.dir)
    const problem = stat ? dirProblem(this.dir) : null
    if (problem) {
      // Entries from a folder others can write could make us report (and tools act on) planted owners;
      // its vanished entries prove nothing either, so no downs: the snapshot is frozen until it is safe.
      if (!this.#unsafe) {
        this.#unsafe = true
        this.#attach()
        this.#fail(new RegistryError('E_UNSAFE_DIR', `Registry folder ${this.dir} ${problem}; the watcher reports nothing from it until then.`, { dir: this.dir }))
      }
      return false
    }
    const ino = stat?.ino
    // Another folder in its place: none of the old file identities carry over.
    if (ino !== this.#dirIno) this.#listing.clear()
    if (this.#unsafe || ino !== this.#dirIno || (ino === undefined && !this.#polling && this.#watchedPath !== nearestExisting(this.dir))) {
      this.#unsafe = false
      this.#dirIno = ino
      this.#attach()
      reread = true
    }
    if (reread) this.#reconcile(judge)
    return true
  }

  /** Re-read the folder listing at once: every id whose files appeared, vanished or changed identity is refreshed. */
  #reconcile(judge: Judge): void {
    for (const _ of this.#compare(judge));
  }

  /**
   * Refresh every workspace whose files appeared, vanished or changed identity since the last look. Lost file
   * events (an inotify overflow) hide rewrites, so the sweep runs this whether events come or not, unless the
   * folder is resting; it yields every {@link SWEEP_CHUNK} files, and the sweep pauses there so file events are
   * never held up long. The folder's stat, taken before the listing, is the stamp of this look once it completes.
   */
  *#compare(judge: Judge): Generator<void, void> {
    const stamp = this.#plan.startLook(this.#dirIno)
    const changed = yield* this.#listing.look(this.#dirIno === undefined ? undefined : this.dir, this.#snapshot.keys(), SWEEP_CHUNK)
    let refreshed = 0
    for (const id of changed) {
      this.#refresh(id, judge)
      if (++refreshed % SWEEP_CHUNK === 0) yield
    }
    this.#plan.finishLook(stamp)
  }

  /** Read the files of one workspace, pick the one that speaks for it, and report what changed. */
  #refresh(id: string, judge: Judge): void {
    if (this.#closed) return
    const candidates: Candidate[] = []
    const files = this.#dirIno === undefined ? [] : this.#listing.filesOf(id)
    for (const file of files) {
      const legacy = file.length !== 21
      const path = join(this.dir, file)
      // The identity is taken before the read, so a rewrite after it shows as a change at the next look.
      const identity = fileIdentity(path)
      const read: FileRead = identity === undefined ? { kind: 'missing' } : readEntryFile(path)
      if (read.kind === 'missing') {
        this.#listing.note(id, file, undefined) // an expected race
        continue
      }
      if (read.kind !== 'ok' && read.kind !== 'corrupt') {
        // Unreadable (EMFILE, EACCES, EIO) says nothing about the workspace: keep what is known, retry at the next look.
        this.#listing.doubt(file)
        return
      }
      this.#listing.note(id, file, identity)
      if (read.kind === 'corrupt') continue // skipped, as list() does
      const parsed = parseEntry(read.bytes.toString('utf8'), id, { legacy, localHost: judge.host })
      if (!parsed.ok) continue
      candidates.push({ file, legacy, bytes: read.bytes, entry: parsed.entry, mtimeMs: read.mtimeMs, verdict: judge.judge(parsed.entry, read.mtimeMs) })
    }
    const winner = pickWinner(candidates)
    this.#apply(id, winner && { entry: winner.entry, verdict: winner.verdict, mtimeMs: winner.mtimeMs }, judge)
  }

  #apply(id: string, next: Tracked | undefined, judge: Judge): void {
    const previous = this.#snapshot.get(id)
    if (next) this.#snapshot.set(id, next)
    else this.#snapshot.delete(id)
    this.#plan.record(id, previous?.entry, next?.entry, judge)
    if (!this.#ready) return
    for (const event of transition(previous, next, (entry) => judge.judge(entry))) {
      if (this.#closed) return
      if (event.type === 'up') this.emit('up', event)
      else if (event.type === 'down') this.emit('down', event)
      else this.emit('change', event)
    }
  }

  /**
   * The periodic pass: the folder's existence and safety every time, then what the {@link SweepPlan} says is due (the
   * listing or a slice of file identities; owners whose probe changed, clock-bound entries, a slice of workspace
   * folders). It pauses every {@link SWEEP_CHUNK} judgements so file events are never held up long.
   */
  async #sweep(): Promise<void> {
    if (this.#sweeping || this.#closed) return
    this.#sweeping = true
    try {
      const judge = new Judge(this.#marker, this.#leaseGraceMs)
      if (!this.#checkFolder(judge, false)) return
      const folder = this.#dirIno
      const resting = !this.#plan.mustLook(this.#dirIno, this.#listing.doubted)
      if (!resting) {
        this.#looks++
        for (const _ of this.#compare(judge)) {
          await pauseSweep()
          // Closed, replaced or unsafe meanwhile: that look re-read the folder, and this pass is stale.
          if (this.#closed || this.#unsafe || this.#dirIno !== folder) return
        }
      }
      let judged = 0
      for (const id of this.#plan.due(judge)) {
        this.#rejudge(id, judge)
        if (++judged % SWEEP_CHUNK === 0 && (await pauseSweep(), this.#closed)) return
      }
      if (resting) {
        // At rest: the next slice of the remembered files' identities (rewrites in place, which leave the folder
        // alone) — after the owners, so an error reading one file never delays a crashed owner's `down`.
        const { files } = this.#listing.size
        for (const id of this.#listing.recheck(this.dir, this.#plan.identitySlice(files))) this.#refresh(id, judge)
      }
    } catch (error) {
      this.#fail(error)
    } finally {
      this.#sweeps++
      this.#sweeping = false
    }
  }

  /** Judge one tracked workspace again, and report a changed verdict. */
  #rejudge(id: string, judge: Judge): void {
    const tracked = this.#snapshot.get(id)
    if (!tracked) return
    const verdict = judge.judge(tracked.entry, tracked.mtimeMs)
    if (verdict.status !== tracked.verdict.status || verdict.reason !== tracked.verdict.reason) this.#apply(id, { ...tracked, verdict }, judge)
  }

  #fail(error: unknown): void {
    if (this.#closed) return
    const failure = error instanceof Error ? error : new Error(String(error))
    // emit('error') with no listener throws, out of a timer: that would crash the host. Monitors still see it.
    if (this.listenerCount('error') > 0) this.emit('error', failure)
    else (this as EventEmitter).emit(errorMonitor, failure)
  }
}

/** Let file events in between slices of a sweep. */
function pauseSweep(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve))
}

function nearestExisting(path: string): string | undefined {
  for (let current = dirname(path); ; current = dirname(current)) {
    if (lstatSync(current, { throwIfNoEntry: false })?.isDirectory()) return current
    if (dirname(current) === current) return undefined
  }
}
