import { serializeEntry, type Entry } from '../entry.js'
import { RegistryError } from '../errors.js'
import type { Registry } from '../registry.js'
import { isRunning } from '../status.js'
import type { RegistryWatcher } from '../watch.js'
import { EtcdStore, agentToken, type EtcdStoreOptions, type Takeover } from './etcd.js'

/** Options of {@link publish}. */
export interface PublishOptions extends EtcdStoreOptions {
  /**
   * How often the local registry is re-judged for owners that died (passed to `registry.watch`).
   * @default 2000
   */
  intervalMs?: number
  /**
   * Where progress and trouble are reported, one line each.
   * @default lines to stderr
   */
  log?: (line: string) => void
}

/** A running publisher; `close()` withdraws its entries at once. */
export interface Publisher {
  /** The store entries are published to. */
  readonly store: EtcdStore
  /** Resolves when the local registry has been mirrored once (after any retries). */
  readonly synced: Promise<void>
  /** Resolves when the publisher stops: undefined after `close()`, the error when it had to give up (another agent took its host name). */
  readonly stopped: Promise<RegistryError | undefined>
  /** Stop: revoke the lease (the host's entries vanish from the fleet) and close the connection. */
  close(): Promise<void>
}

const BACKOFF_START_MS = 250
const BACKOFF_MAX_MS = 5000

/**
 * Mirror this machine's file-tree registry into etcd: the running and idle entries of the folder,
 * under `<prefix>/<app>/workspaces/<host>/<id>` on one lease this agent keeps alive. Follows the
 * folder with `registry.watch()`, removes what disappears locally, and after an etcd outage or a
 * lost lease re-reads etcd and republishes, retrying with backoff. Refuses (`E_LOCKED`) when a live
 * agent already publishes the same host name.
 */
export async function publish(registry: Registry, options: PublishOptions): Promise<Publisher> {
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`))
  const store = await EtcdStore.connect({ ...options, app: options.app ?? registry.app })
  const token = agentToken()
  let claimed = true
  let takeover: Takeover | undefined
  try {
    takeover = await store.claimHost(token)
  } catch (error) {
    // etcd being down is no reason not to start: the mirror claims the host name once it is back.
    if (!(error instanceof RegistryError && error.code === 'E_UNAVAILABLE')) {
      await store.close()
      throw error
    }
    claimed = false
  }
  const mirror = new Mirror(registry, store, token, options.intervalMs, log, claimed)
  if (takeover) mirror.tookOver(takeover)
  return mirror
}

class Mirror implements Publisher {
  readonly store: EtcdStore
  readonly synced: Promise<void>
  readonly stopped: Promise<RegistryError | undefined>
  #stop: (error: RegistryError | undefined) => void = () => undefined
  readonly #token: string
  readonly #log: (line: string) => void
  readonly #watcher: RegistryWatcher
  /** What the local registry holds: id → entry JSON. */
  readonly #desired = new Map<string, string>()
  /** What we believe etcd holds for our host: id → mod revision. */
  readonly #published = new Map<string, { value: string; version: string }>()
  readonly #pending = new Set<string>()
  #full = true
  #claimed = true
  #running = false
  /** When etcd stopped answering (monotonic ms), while it does not. */
  #outageSince: number | undefined
  #connectedOnce = false
  /** The last failure reported that was not an outage, so a retry loop says it once. */
  #lastProblem: string | undefined
  /** Ends the backoff wait early (etcd answered a keep-alive again). */
  #wake: () => void = () => undefined
  /** A dead predecessor's lease, revoked once its entries are rewritten on ours. */
  #previousLease: string | undefined
  #backoffMs = BACKOFF_START_MS
  #closed = false
  #markSynced: () => void = () => undefined
  #idle: Promise<void> = Promise.resolve()

  constructor(registry: Registry, store: EtcdStore, token: string, intervalMs: number | undefined, log: (line: string) => void, claimed: boolean) {
    this.store = store
    this.#claimed = claimed
    this.#token = token
    this.#log = log
    this.synced = new Promise((resolve) => (this.#markSynced = resolve))
    this.stopped = new Promise((resolve) => (this.#stop = resolve))
    store.on('disconnected', (reason) => this.#down(reason))
    store.on('reconnected', () => {
      this.#full = true
      this.#wake()
      this.#pump()
    })
    store.on('lost', (error) => {
      this.#log(`wsreg publish: ${error.message}; they come back once it answers`)
      this.#claimed = false
      this.#full = true
      this.#pump()
    })
    this.#watcher = registry.watch({ intervalMs })
    this.#watcher.on('ready', (event) => {
      for (const row of event.entries) this.#desired.set(row.entry.id, serializeEntry(row.entry))
      this.#pump()
    })
    this.#watcher.on('up', (event) => this.#set(event.entry))
    this.#watcher.on('change', (event) => {
      if (event.entry && event.status && (isRunning(event.status) || event.status === 'idle')) this.#set(event.entry)
      else this.#unset((event.previous ?? event.entry) as Entry)
    })
    this.#watcher.on('down', (event) => this.#unset(event.entry))
    this.#watcher.on('error', (error) => this.#log(`wsreg publish: local registry: ${error.message}`))
  }

  /** Say once per outage that etcd stopped answering. */
  #down(reason: string): void {
    if (this.#outageSince !== undefined || this.#closed) return
    this.#outageSince = performance.now()
    const what = this.#connectedOnce ? 'lost connection to' : 'cannot reach'
    this.#log(`wsreg publish: ${what} etcd at ${this.store.location} (${reason}); retrying until it answers (published entries stay for up to ${this.store.ttlSeconds} s)`)
  }

  /** Note a dead predecessor whose key was taken over: its entries are rewritten on our lease, then its lease revoked. */
  tookOver(takeover: Takeover): void {
    this.#previousLease = takeover.lease
    this.#log(`wsreg publish: took over host ${this.store.host} from the previous agent (pid ${takeover.previous.pid ?? '?'}, ${takeover.reason}) instead of waiting for its lease to run out`)
  }

  #set(entry: Entry): void {
    this.#desired.set(entry.id, serializeEntry(entry))
    this.#pending.add(entry.id)
    this.#pump()
  }

  #unset(entry: Entry): void {
    this.#desired.delete(entry.id)
    this.#pending.add(entry.id)
    this.#pump()
  }

  /** Run reconciliation until nothing is pending; one runner at a time, so etcd sees our writes in order. */
  #pump(): void {
    if (this.#running || this.#closed) return
    this.#running = true
    this.#idle = this.#drain().finally(() => (this.#running = false))
  }

  async #drain(): Promise<void> {
    while (!this.#closed && (this.#full || this.#pending.size > 0)) {
      try {
        if (!this.#claimed) {
          const takeover = await this.store.claimHost(this.#token)
          if (takeover) this.tookOver(takeover)
          this.#claimed = true
        }
        if (this.#full) {
          this.#pending.clear()
          const { written, kept } = await this.#reconcileAll()
          this.#full = false
          if (this.#outageSince !== undefined && this.#connectedOnce) {
            const seconds = ((performance.now() - this.#outageSince) / 1000).toFixed(1)
            this.#log(`wsreg publish: etcd at ${this.store.location} is back after ${seconds} s; republished ${plural(written, 'entry', 'entries')} (${kept} already there)`)
          }
          if (this.#previousLease !== undefined) {
            await this.store.revokeLease(this.#previousLease)
            this.#previousLease = undefined
          }
          this.#markSynced()
        } else {
          const ids = [...this.#pending]
          this.#pending.clear()
          for (const id of ids) await this.#reconcile(id)
        }
        this.#outageSince = undefined
        this.#connectedOnce = true
        this.#lastProblem = undefined
        this.#backoffMs = BACKOFF_START_MS
      } catch (error) {
        if (error instanceof RegistryError && error.code === 'E_LOCKED') {
          // Another agent took our host name while we were cut off: publishing on would fight it.
          this.#stop(error)
          void this.close()
          return
        }
        if (error instanceof RegistryError && error.code === 'E_UNAVAILABLE') {
          this.#down(typeof error.details.reason === 'string' ? error.details.reason : error.message)
        } else if ((error as Error).message !== this.#lastProblem) {
          this.#lastProblem = (error as Error).message
          this.#log(`wsreg publish: ${this.#lastProblem}; retrying`)
        }
        this.#full = true
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => resolve(), this.#backoffMs)
          this.#wake = () => {
            clearTimeout(timer)
            resolve()
          }
        })
        this.#wake = () => undefined
        this.#backoffMs = Math.min(this.#backoffMs * 2, BACKOFF_MAX_MS)
      }
    }
  }

  /** Make etcd's keys of this host equal the local registry; returns how many entries were written and how many were already there. */
  async #reconcileAll(): Promise<{ written: number; kept: number }> {
    const lease = await this.store.leaseId()
    const keys = await this.store.hostKeys()
    this.#published.clear()
    let written = 0
    let kept = 0
    // A key on another lease belongs to a direct owner (`EtcdStore.claim`): never ours to rewrite or delete.
    const ours = (key: { lease: string }): boolean => key.lease === lease || key.lease === this.#previousLease
    for (const [id, value] of this.#desired) {
      const current = keys.get(id)
      if (current && !ours(current)) continue
      if (current && current.value === value && current.lease === lease) {
        this.#published.set(id, { value, version: current.version })
        kept++
      } else {
        await this.#put(id, value)
        written++
      }
    }
    for (const [id, current] of keys) if (!this.#desired.has(id) && ours(current)) await this.store.compareAndDelete(id, current.version)
    return { written, kept }
  }

  async #reconcile(id: string): Promise<void> {
    const value = this.#desired.get(id)
    const published = this.#published.get(id)
    if (value !== undefined && published?.value !== value) {
      if (!published && (await this.#directlyOwned(id))) return
      await this.#put(id, value)
    }
    if (value === undefined && published) {
      // Only the version we wrote goes: a key someone rewrote since stands.
      await this.store.compareAndDelete(id, published.version)
      this.#published.delete(id)
    }
  }

  /** True when the key of `id` is held by a direct owner (`EtcdStore.claim`): on a lease that is not ours. */
  async #directlyOwned(id: string): Promise<boolean> {
    const lease = await this.store.leaseId()
    // A failed read proves nothing: it fails the pass (which backs off and retries), never writes over a direct owner.
    const kv = (await this.store.client.get(this.store.key(id)).exec()).kvs[0]
    return kv !== undefined && kv.lease !== '0' && kv.lease !== lease && kv.lease !== this.#previousLease
  }

  async #put(id: string, value: string): Promise<void> {
    const stored = await this.store.write(JSON.parse(value) as Entry)
    this.#published.set(id, { value, version: stored.version })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#wake()
    await this.#watcher.close()
    await this.#idle.catch(() => undefined)
    await this.store.close()
    this.#stop(undefined)
  }
}

function plural(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`
}
