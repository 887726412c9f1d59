import { EventEmitter } from 'node:events'
import type { IKeyValue, Watcher } from 'etcd3'
import type { Entry } from '../entry.js'
import { Judge, isRunning, type Verdict } from '../status.js'
import { transition, type Observation, type RegistryEvent, type WatchedEntry } from '../transition.js'
import { iterateEvents, type RegistryWatcherEvents } from '../events.js'
import { clientReason } from './connection.js'
import type { EtcdStore } from './etcd.js'
import type { StoredEntry } from './seam.js'

/** Options of a {@link FleetWatcher} (`store.watch(options)`). */
export interface FleetWatchOptions {
  /**
   * The fleet name of this machine: its entries are judged by the liveness truth table, every other
   * host's entries by their lease (present = alive).
   * @default the store's host
   */
  localHost?: string
  /** File that must exist in a workspace root (as `RegistryOptions.marker`), for this machine's entries. */
  marker?: string
  /**
   * How often this machine's entries are re-judged (an owner may die without anyone touching etcd).
   * @default 2000
   */
  intervalMs?: number
  /** Closes the watcher when aborted. */
  signal?: AbortSignal
}

/** The verdict on a fleet entry: the truth table on its own host, its lease everywhere else. */
export function judgeFleet(stored: StoredEntry, localHost: string, judge: Judge): Verdict {
  if (stored.host === localHost) return judge.judge(stored.entry)
  return stored.entry.pid === 0 ? { status: 'idle', reason: null } : { status: 'alive', reason: null }
}

/** The entry as the fleet shows it: `host` is the name it is published under. */
export function fleetEntry(stored: StoredEntry): Entry {
  return stored.host === stored.entry.host ? stored.entry : { ...stored.entry, host: stored.host }
}

/** What a fleet watcher reports when etcd answers again after an outage. */
export interface ReconnectInfo {
  /** The store, as `etcd://host:port/prefix` (no credentials). */
  location: string
  /** How long etcd was unreachable, in ms. */
  downMs: number
  /** How many entries the fresh listing holds; transitions missed meanwhile were emitted before this. */
  entries: number
}

/** Events of a {@link FleetWatcher}: the folder watcher's, plus `reconnect`. */
export interface FleetWatcherEvents extends RegistryWatcherEvents {
  /** etcd answered again after an outage: the fleet was listed afresh and the watch restarted from there. */
  reconnect: [info: ReconnectInfo]
}

interface Tracked {
  stored: StoredEntry
  verdict: Verdict
}

const RETRY_MAX_MS = 5000

/**
 * Watches a whole fleet in etcd: one listing, then one etcd watch from the listing's revision, so
 * no change falls between the two. Events are the folder watcher's (`ready`, `up`, `down`,
 * `change`, `error`); an entry whose lease expired is `down` with reason `removed`. When the
 * connection drops, the watcher says so (`error`), lists afresh once etcd answers (emitting what
 * changed meanwhile) and emits `reconnect`.
 */
export class FleetWatcher extends EventEmitter<FleetWatcherEvents> implements AsyncIterable<RegistryEvent> {
  readonly #store: EtcdStore
  readonly #localHost: string
  readonly #marker: string | undefined
  readonly #snapshot = new Map<string, Tracked>()
  readonly #sweep: NodeJS.Timeout
  #watcher: Watcher | undefined
  #ready = false
  #closed = false
  /** When etcd stopped answering (monotonic ms), while it does not. */
  #outageSince: number | undefined
  #retryMs = 100

  constructor(store: EtcdStore, options: FleetWatchOptions = {}) {
    super()
    this.#store = store
    this.#localHost = options.localHost ?? store.host
    this.#marker = options.marker
    this.#sweep = setInterval(() => this.#rejudge(), options.intervalMs ?? 2000)
    options.signal?.addEventListener('abort', () => void this.close(), { once: true })
    setImmediate(() => void this.#sync())
  }

  /** Stop watching; safe to call more than once. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#sweep)
    const watcher = this.#watcher
    this.#watcher = undefined
    await watcher?.cancel().catch(() => undefined)
    this.emit('close')
  }

  /** List, diff against the snapshot, then watch from the listing's revision; retried with backoff while etcd is down. */
  async #sync(): Promise<void> {
    if (this.#closed) return
    try {
      const { entries, revision } = await this.#store.listWithRevision()
      const downSince = this.#outageSince
      const judge = new Judge(this.#marker)
      const seen = new Set<string>()
      for (const stored of entries) {
        seen.add(stored.location)
        this.#apply(stored.location, stored, judge)
      }
      for (const key of [...this.#snapshot.keys()]) if (!seen.has(key)) this.#apply(key, undefined, judge)
      if (!this.#ready) {
        this.#ready = true
        const rows: WatchedEntry[] = [...this.#snapshot.values()]
          .filter((row) => isRunning(row.verdict.status) || row.verdict.status === 'idle')
          .map((row) => ({ entry: fleetEntry(row.stored), status: row.verdict.status, reason: row.verdict.reason }))
          .sort((a, b) => (a.entry.name < b.entry.name ? -1 : a.entry.name > b.entry.name ? 1 : a.entry.cwd < b.entry.cwd ? -1 : 1))
        this.emit('ready', { type: 'ready', entries: rows })
      }
      const watcher = await this.#store.client.watch().prefix(this.#store.workspaces).startRevision(String(BigInt(revision) + 1n)).create()
      if (this.#closed) {
        await watcher.cancel()
        return
      }
      this.#watcher = watcher
      watcher.on('put', (kv: IKeyValue) => this.#apply(kv.key.toString('utf8'), this.#store.toStored(kv), new Judge(this.#marker)))
      watcher.on('delete', (kv: IKeyValue) => this.#apply(kv.key.toString('utf8'), undefined, new Judge(this.#marker)))
      // A lost connection, or a watch cancelled by etcd (its revision compacted away), is replaced by a
      // fresh listing and a new watch: the listing emits whatever changed while nobody was watching.
      const replace = (error: Error): void => {
        if (this.#watcher !== watcher) return
        this.#watcher = undefined
        void watcher.cancel().catch(() => undefined)
        this.#down(error)
        this.#retry()
      }
      watcher.on('disconnected', replace)
      watcher.on('error', replace)
      this.#retryMs = 100
      this.#outageSince = undefined
      if (downSince !== undefined) this.emit('reconnect', { location: this.#store.location, downMs: performance.now() - downSince, entries: this.#snapshot.size })
    } catch (error) {
      this.#down(error as Error)
      this.#retry()
    }
  }

  #retry(): void {
    if (this.#closed) return
    setTimeout(() => void this.#sync(), this.#retryMs)
    this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS)
  }

  #down(error: Error): void {
    if (this.#outageSince !== undefined || this.#closed) return
    this.#outageSince = performance.now()
    // An 'error' nobody listens to would throw; the watcher keeps retrying either way.
    if (this.listenerCount('error') > 0) this.emit('error', new Error(`fleet watch lost etcd at ${this.#store.location} (${clientReason(error)}); retrying`))
  }

  #apply(key: string, stored: StoredEntry | undefined, judge: Judge): void {
    const previous = this.#snapshot.get(key)
    const next: Tracked | undefined = stored ? { stored, verdict: judgeFleet(stored, this.#localHost, judge) } : undefined
    if (next) this.#snapshot.set(key, next)
    else this.#snapshot.delete(key)
    if (!this.#ready) return
    const observe = (row: Tracked | undefined): Observation => (row ? { entry: fleetEntry(row.stored), verdict: row.verdict } : undefined)
    const local = previous?.stored.host === this.#localHost
    for (const event of transition(observe(previous), observe(next), (entry) => (local ? judge.judge({ ...entry, host: previous.stored.entry.host }) : { status: 'unknown', reason: null }))) {
      this.emit(event.type, event as never)
    }
  }

  /** Re-judge this machine's entries: owners die without touching etcd. */
  #rejudge(): void {
    if (!this.#ready) return
    const judge = new Judge(this.#marker)
    for (const [key, row] of this.#snapshot) if (row.stored.host === this.#localHost) this.#apply(key, row.stored, judge)
  }

  /** Iterate the events until the watcher closes. */
  [Symbol.asyncIterator](): AsyncIterator<RegistryEvent> {
    return iterateEvents(this as unknown as EventEmitter<RegistryWatcherEvents> & { close(): Promise<void> }, () => this.#closed)
  }
}
