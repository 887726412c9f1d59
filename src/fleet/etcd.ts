import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { Etcd3, IKeyValue, IOptions, Lease } from 'etcd3'
import { parseEntry, serializeEntry, type Entry } from '../entry.js'
import { RegistryError } from '../errors.js'
import { captureIdentity, hostName } from '../identity.js'
import type { LockHolder, LockOptions } from '../lock.js'
import { canonicalCwd, idOfCanonical } from '../paths.js'
import type { DeleteOutcome, EntryStore, StoredEntry } from './seam.js'
import type { EntryRow } from '../registry.js'
import { Judge, isPrunable } from '../status.js'
import { parseStoreUrl, storeAccess, type StoreCredentials } from './address.js'
import { clientReason, failoverPolicies, leaseLoss, monitorKeepAlive } from './connection.js'
import { claimInStore, type FleetClaim, type FleetClaimOptions } from './owner.js'
import type { ClaimInput } from '../claim.js'
import { FleetWatcher, fleetEntry, judgeFleet, type FleetWatchOptions } from './watch.js'

/** Options of {@link EtcdStore.connect}. */
export interface EtcdStoreOptions extends StoreCredentials {
  /** `etcd[s]://[user:password@]HOST[:PORT][,HOST[:PORT]…][/prefix]`; `etcds` speaks TLS, the port defaults to 2379. */
  url: string
  /**
   * Application whose registry this is; part of every key.
   * @default 'wsreg'
   */
  app?: string
  /**
   * The name this machine's entries are published under (no `/`).
   * @default os.hostname()
   */
  host?: string
  /**
   * Lease time-to-live: how long entries outlive a publisher that stopped renewing them.
   * @default 10
   */
  ttlSeconds?: number
}

/** Who publishes a host's entries, as its agent key records. */
export interface AgentRecord {
  /** Process id of the agent. */
  pid: number
  /** `os.hostname()` of the agent's machine. */
  machine: string
  /** When the agent started publishing (ISO-8601 UTC). */
  since: string
  /** Random token telling this agent's records from a predecessor's. */
  token: string
  /** Boot id of the agent's machine, so a successor can prove it runs on the same boot. */
  bootId?: string | null
  /** Start token of the agent process, so a successor can tell it from a reused pid. */
  pidStartTime?: string | null
  /** PID namespace of the agent. */
  pidNamespace?: string | null
  /** Time namespace of the agent. */
  timeNamespace?: string | null
}

/** What {@link EtcdStore.claimHost} found: a predecessor on this machine, proven dead, whose key it took over. */
export interface Takeover {
  /** The dead agent's record. */
  previous: Partial<AgentRecord>
  /** Why it is dead (`exited`, `zombie`, `pid-reused`). */
  reason: string
  /** Its lease, which still holds its entries until they are rewritten or it expires. */
  lease: string
}

const DEFAULT_TTL_SECONDS = 10
const CALL_DEADLINE_MS = 3000
const MAX_BACKOFF_MS = 250

/** Events of an {@link EtcdStore}. */
export interface EtcdStoreEvents {
  /** etcd dropped the store's lease (an outage longer than the TTL): its entries are gone until rewritten. */
  lost: [error: RegistryError]
  /** A keep-alive of the store's lease failed, or went unanswered for one keep-alive interval (a third of the TTL). */
  disconnected: [reason: string]
  /** etcd answers keep-alives again, and the lease is still alive. */
  reconnected: []
}

/** A listing with the etcd revision it was taken at, for a watch to start right after. */
export interface Listing {
  /** The entries listed. */
  entries: StoredEntry[]
  /** The etcd revision of the listing. */
  revision: string
}

/** One key of a host, as the publisher reconciles it. */
export interface HostKey {
  /** The stored JSON. */
  value: string
  /** The key's mod revision. */
  version: string
  /** The lease the key is attached to. */
  lease: string
}

function checkHost(host: string): string {
  if (typeof host !== 'string' || host === '' || host.includes('/') || host.length > 253) {
    throw new RegistryError('E_INVALID', `Invalid host name ${JSON.stringify(host)}: pass a non-empty name without "/" (default: os.hostname()).`)
  }
  return host
}

/** How to add the optional peer dependency; kept in step with `peerDependencies` (test/package.test.ts checks). */
export const ETCD3_INSTALL = 'npm install etcd3@^1.1.2'

/** The etcd client library, loaded only when an etcd store is used (it is an optional peer dependency). */
async function loadEtcd3(): Promise<typeof import('etcd3')> {
  try {
    const module = (await import('etcd3')) as typeof import('etcd3') & { default?: typeof import('etcd3') }
    return module.Etcd3 ? module : (module.default as typeof import('etcd3'))
  } catch (error) {
    throw new RegistryError('E_UNAVAILABLE', `The etcd client is not installed: run \`${ETCD3_INSTALL}\` where workspace-registry is installed (for a global wsreg: \`npm install -g etcd3\`) to use an etcd store.`, {}, { cause: error })
  }
}

/** Wrap a client failure as E_UNAVAILABLE naming the store (E_PERM when etcd refused the login or the access). */
export function unavailable(location: string, error: unknown): RegistryError {
  if (error instanceof RegistryError) return error
  const reason = clientReason(error)
  if (/permission denied/i.test(reason)) {
    return new RegistryError('E_PERM', `etcd at ${location} denied access (${reason}): the etcd user's role must grant readwrite on the store's key prefix`, {}, { cause: error })
  }
  if (/authentication failed|invalid user ID or password|user name (is )?(not found|empty)|invalid auth token|authentication is not enabled/i.test(reason)) {
    return new RegistryError('E_PERM', `etcd at ${location} refused the login (${reason}): check WSREG_ETCD_USER and WSREG_ETCD_PASSWORD (or the URL's user)`, {}, { cause: error })
  }
  return new RegistryError('E_UNAVAILABLE', `etcd at ${location} is unreachable (${reason}); check that it runs and the URL is right`, { reason }, { cause: error })
}


/**
 * Entries in etcd under `<prefix>/<app>/workspaces/<host>/<id>`, the value being the entry file's
 * JSON. This store's writes ride on one lease that it keeps alive: when the process (or its host)
 * dies, its entries expire with the lease. Emits `lost` when etcd dropped the lease.
 */
export class EtcdStore extends EventEmitter<EtcdStoreEvents> implements EntryStore {
  readonly location: string
  readonly host: string
  /** Application whose registry this is (part of every key). */
  readonly app: string
  /** Lease time to live: how long a dead publisher's entries outlive it. */
  readonly ttlSeconds: number
  /** Key prefix of every workspace of the fleet. */
  readonly workspaces: string
  readonly #root: string
  readonly #client: Etcd3
  #lease: Lease | undefined
  #closed = false

  private constructor(client: Etcd3, options: { url: string; app: string; host: string; ttlSeconds: number; prefix: string }) {
    super()
    this.#client = client
    this.location = options.url
    this.host = checkHost(options.host)
    this.app = options.app
    this.ttlSeconds = options.ttlSeconds
    this.#root = `${options.prefix}/${options.app}`
    this.workspaces = `${this.#root}/workspaces/`
  }

  /** Open a store (no network traffic until the first call). */
  static async connect(options: EtcdStoreOptions): Promise<EtcdStore> {
    const address = parseStoreUrl(options.url)
    const ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw new RegistryError('E_INVALID', `Invalid TTL ${String(ttlSeconds)}: pass whole seconds ≥ 1.`)
    const { Etcd3, isRecoverableError } = await loadEtcd3()
    const policies = failoverPolicies(address.hosts.length, (error) => error instanceof Error && isRecoverableError(error))
    const clientOptions: IOptions = {
      hosts: address.hosts,
      ...storeAccess(address, options),
      dialTimeout: CALL_DEADLINE_MS,
      faultHandling: { host: () => policies.host() as never, global: policies.global as never },
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + CALL_DEADLINE_MS }),
      // A fleet listing of 10,000 entries is ~5 MB, above gRPC's 4 MB default.
      grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024 },
    }
    return new EtcdStore(new Etcd3(clientOptions), { url: address.display, app: options.app ?? 'wsreg', host: options.host ?? hostName(), ttlSeconds, prefix: address.prefix })
  }

  /** The key of workspace `id` published by `host`. */
  key(id: string, host = this.host): string {
    return `${this.workspaces}${host}/${id}`
  }

  /** The etcd client, for the watcher and the publisher. */
  get client(): Etcd3 {
    return this.#client
  }

  /** The id of this store's lease, granting one (kept alive until close or loss) when there is none. */
  async leaseId(): Promise<string> {
    if (!this.#lease) {
      const lease = this.#client.lease(this.ttlSeconds)
      let granted = false
      void lease.grant().then(() => (granted = true), () => undefined)
      const monitor = monitorKeepAlive(lease, (this.ttlSeconds * 1000) / 3, {
        down: (reason) => void (this.#lease === lease && !this.#closed && this.emit('disconnected', reason)),
        up: () => void (this.#lease === lease && !this.#closed && this.emit('reconnected')),
      })
      lease.on('lost', (error) => {
        monitor.stop()
        // A grant that failed is reported by the caller awaiting it; only a granted lease can be lost.
        if (this.#lease !== lease || !granted) return
        this.#lease = undefined
        // etcd3's own message for this case reads "Lease We lost connection … is expired or revoked".
        const lost = new RegistryError('E_UNAVAILABLE', `the lease of host ${this.host} on ${this.location} ran out while etcd was unreachable, so its entries left the fleet`, {}, { cause: error })
        if (!this.#closed) this.emit('lost', lost)
      })
      this.#lease = lease
    }
    const lease = this.#lease
    try {
      return await lease.grant()
    } catch (error) {
      if (this.#lease === lease) this.#lease = undefined
      throw unavailable(this.location, error)
    }
  }

  /** Read one key and parse it as an entry; undefined when absent or not a valid entry. */
  toStored(kv: IKeyValue): StoredEntry | undefined {
    const key = kv.key.toString('utf8')
    if (!key.startsWith(this.workspaces)) return undefined
    const [host, id, extra] = key.slice(this.workspaces.length).split('/')
    if (!host || !id || extra !== undefined) return undefined
    // The same validation as a file: the id in the key must be the hash of the recorded cwd.
    const parsed = parseEntry(kv.value.toString('utf8'), id)
    return parsed.ok ? { entry: parsed.entry, host, location: key, version: kv.mod_revision } : undefined
  }

  async read(id: string): Promise<StoredEntry | undefined> {
    const response = await this.#call(() => this.#client.get(this.key(id)).exec())
    const kv = response.kvs[0]
    return kv ? this.toStored(kv) : undefined
  }

  async write(entry: Entry): Promise<StoredEntry> {
    const lease = await this.leaseId()
    const key = this.key(entry.id)
    const response = await this.#call(() => this.#client.put(key).value(serializeEntry(entry)).lease(lease).exec())
    return { entry, host: this.host, location: key, version: response.header.revision }
  }

  async compareAndDelete(id: string, version: string): Promise<DeleteOutcome> {
    const key = this.key(id)
    const response = await this.#call(() =>
      this.#client.if(key, 'Mod', '==', version).then(this.#client.delete().key(key)).else(this.#client.get(key)).commit(),
    )
    if (response.succeeded) return 'deleted'
    return response.responses[0]?.response_range?.kvs.length ? 'changed' : 'missing'
  }

  async list(): Promise<StoredEntry[]> {
    return (await this.listWithRevision()).entries
  }

  /** Every entry (or one host's) with the revision the listing was taken at, for a watch to start after. */
  async listWithRevision(host?: string): Promise<Listing> {
    const prefix = host === undefined ? this.workspaces : `${this.workspaces}${host}/`
    const response = await this.#call(() => this.#client.getAll().prefix(prefix).exec())
    const entries: StoredEntry[] = []
    for (const kv of response.kvs) {
      const row = this.toStored(kv)
      if (row) entries.push(row)
    }
    return { entries, revision: response.header.revision }
  }

  /**
   * The fleet as `wsreg ls` shows it, sorted by name, cwd then host: this machine's entries judged
   * by the truth table (`localHost`), the others alive while their lease lives. `path` is the etcd
   * key; `host` the name the entry is published under. `all` keeps dead and gone rows.
   */
  async listInfo(options: { localHost?: string; marker?: string; all?: boolean } = {}): Promise<EntryRow[]> {
    const judge = new Judge(options.marker)
    const rows: EntryRow[] = []
    for (const stored of await this.list()) {
      const verdict = judgeFleet(stored, options.localHost ?? this.host, judge)
      if (isPrunable(verdict.status) && !options.all) continue
      rows.push({ ...fleetEntry(stored), status: verdict.status, reason: verdict.reason, path: stored.location, mtime: stored.entry.updatedAt })
    }
    const order = (a: EntryRow, b: EntryRow): number =>
      a.name !== b.name ? (a.name < b.name ? -1 : 1) : a.cwd !== b.cwd ? (a.cwd < b.cwd ? -1 : 1) : a.host < b.host ? -1 : a.host > b.host ? 1 : 0
    return rows.sort(order)
  }

  /** Keys of one host with their lease, for the publisher's reconciliation. */
  async hostKeys(host = this.host): Promise<Map<string, HostKey>> {
    const prefix = `${this.workspaces}${host}/`
    const response = await this.#call(() => this.#client.getAll().prefix(prefix).exec())
    const keys = new Map<string, { value: string; version: string; lease: string }>()
    for (const kv of response.kvs) {
      keys.set(kv.key.toString('utf8').slice(prefix.length), { value: kv.value.toString('utf8'), version: kv.mod_revision, lease: kv.lease })
    }
    return keys
  }

  /** Fleet events: `ready`, `up`, `down`, `change` and `error`, like a folder watcher. */
  watch(options: FleetWatchOptions = {}): FleetWatcher {
    return new FleetWatcher(this, options)
  }

  /**
   * Claim the agent key of this host on this store's lease, so no two agents publish one host
   * name. `token` identifies this agent, so it can re-claim its own key after a lease loss. A
   * predecessor that recorded this machine's boot and is proven dead by the truth table (a
   * SIGKILLed agent, restarted) is taken over at once instead of after its TTL: the key moves to
   * this lease and the takeover is returned. Throws `E_LOCKED` naming the other agent otherwise.
   */
  async claimHost(token: string): Promise<Takeover | undefined> {
    const key = `${this.#root}/agents/${this.host}`
    const lease = await this.leaseId()
    const self = captureIdentity(process.pid)
    const record: AgentRecord = { pid: process.pid, machine: hostName(), since: new Date().toISOString(), token, bootId: self.bootId, pidStartTime: self.pidStartTime, pidNamespace: self.pidNamespace, timeNamespace: self.timeNamespace }
    for (let attempt = 0; attempt < 8; attempt++) {
      const response = await this.#call(() =>
        this.#client.if(key, 'Create', '==', 0).then(this.#client.put(key).value(JSON.stringify(record)).lease(lease)).else(this.#client.get(key)).commit(),
      )
      if (response.succeeded) return undefined
      const kv = response.responses[0]?.response_range?.kvs[0]
      if (!kv) continue
      const other = parseJson(kv.value.toString('utf8')) as Partial<AgentRecord> | undefined
      const dead = other?.token === token ? undefined : deadPredecessor(other)
      if (other?.token !== token && !dead) {
        throw new RegistryError(
          'E_LOCKED',
          `Another agent already publishes host ${JSON.stringify(this.host)} to ${this.location} (pid ${other?.pid ?? '?'} on ${other?.machine ?? '?'}, since ${other?.since ?? '?'}): stop it, or give this one another name with --host.`,
          { holder: other },
        )
      }
      // Our own key from a lease we lost, or a dead predecessor's: move it to our lease, unless it changed meanwhile.
      const moved = await this.#call(() =>
        this.#client.if(key, 'Mod', '==', kv.mod_revision).then(this.#client.put(key).value(JSON.stringify(record)).lease(lease)).commit(),
      )
      if (moved.succeeded) return dead && other ? { previous: other, reason: dead, lease: kv.lease } : undefined
    }
    throw new RegistryError('E_LOCKED', `The agent key of host ${this.host} keeps changing; another agent may be starting. Try again.`)
  }

  /**
   * Register this process (or `input.pid`) as the owner of workspace `input.cwd` directly in etcd,
   * without a publishing agent: the entry lives under this host's name on a lease of its own, kept
   * alive while the claim is held, revoked by `release()` (and on SIGINT, SIGTERM or SIGHUP when
   * `cleanupOnExit`), left to expire after `leaseMs` on a crash. Exclusive per workspace and host
   * like `registry.claim()`: `E_LOCKED` with `details.pid` and `details.entry` while a live owner holds it.
   */
  async claim(input: ClaimInput, options: FleetClaimOptions = {}): Promise<FleetClaim> {
    return claimInStore({ client: this.#client, host: this.host, ttlSeconds: this.ttlSeconds, key: (id, host) => this.key(id, host), fail: (error) => unavailable(this.location, error) }, input, options)
  }

  /**
   * Take the fleet-wide lock of workspace `cwd`: a key created only if absent, on a lease of its
   * own, so a holder that dies frees it within the TTL. Same contract as `registry.lock()` (the
   * handle is callable as `release()`; `E_LOCKED` with `details.holder` once `waitMs` has passed),
   * plus what a lease-held lock needs: `signal` aborts when the lease is lost, and `fencingToken`
   * orders holders, so a resource can refuse a holder that lost the lock without noticing.
   */
  async lock(cwd: string, options: LockOptions = {}): Promise<FleetLock> {
    const id = idOfCanonical(canonicalCwd(cwd))
    const key = `${this.#root}/locks/${id}`
    const deadline = performance.now() + (options.waitMs ?? 0)
    const lease = this.#client.lease(this.ttlSeconds)
    const loss = leaseLoss(lease, this.ttlSeconds, `The fleet lock of ${canonicalCwd(cwd)}`)
    let fencingToken: bigint
    try {
      const leaseId = await lease.grant()
      const holder: LockHolder = { pid: process.pid, host: this.host, since: new Date().toISOString() }
      for (let backoff = 5; ; backoff = Math.min(backoff * 2, MAX_BACKOFF_MS)) {
        const response = await this.#call(() =>
          this.#client.if(key, 'Create', '==', 0).then(this.#client.put(key).value(JSON.stringify(holder)).lease(leaseId)).else(this.#client.get(key)).commit(),
        )
        if (response.succeeded) {
          // The transaction created the key, so its revision is the key's create revision: it grows with every new holder.
          fencingToken = BigInt(response.header.revision)
          break
        }
        if (performance.now() >= deadline) {
          const kv = response.responses[0]?.response_range?.kvs[0]
          const current = kv ? (parseJson(kv.value.toString('utf8')) as LockHolder | undefined) : undefined
          throw new RegistryError('E_LOCKED', `Workspace ${canonicalCwd(cwd)} is locked fleet-wide${current ? ` by pid ${current.pid} on ${current.host} since ${current.since}` : ''}.`, current ? { holder: current } : {})
        }
        await new Promise((resolve) => setTimeout(resolve, backoff * (0.5 + Math.random())))
      }
    } catch (error) {
      loss.stop()
      await lease.revoke().catch(() => undefined)
      throw error instanceof RegistryError ? error : unavailable(this.location, error)
    }
    let released = false
    // Revoking the lease deletes the key with it, so release can never remove a successor's lock.
    const release = async (): Promise<void> => {
      if (released) return
      released = true
      loss.stop()
      await lease.revoke().catch(() => lease.release())
    }
    return Object.assign(release, { release, signal: loss.signal, fencingToken, key })
  }

  /** Revoke lease `id` (a dead predecessor's, once its entries were rewritten on ours); failures are ignored, as it expires anyway. */
  async revokeLease(id: string): Promise<void> {
    if (id === '0' || id === (await this.leaseId().catch(() => undefined))) return
    await this.#client.leaseClient.leaseRevoke({ ID: id }).catch(() => undefined)
  }

  /** Revoke this store's lease (its entries vanish at once) and close the connection. */
  async close(options: { revoke?: boolean } = {}): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const lease = this.#lease
    this.#lease = undefined
    if (lease) {
      if (options.revoke ?? true) await lease.revoke().catch(() => lease.release())
      else lease.release()
    }
    this.#client.close()
  }

  async #call<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation()
    } catch (error) {
      throw unavailable(this.location, error)
    }
  }
}

/**
 * The fleet-wide lock of one workspace, held by a lease. Call it (or `release()`) to release it.
 * A lease can be lost while held (etcd unreachable or this process paused longer than the TTL), so
 * work under the lock should watch `signal` and hand `fencingToken` to whatever it writes.
 */
export interface FleetLock {
  (): Promise<void>
  /** Release the lock (revokes its lease, which deletes the key with it); later calls do nothing. */
  release(): Promise<void>
  /** Aborted, with `RegistryError` `E_LOCKED` (`details.lost: true`), once the lock may belong to someone else. */
  signal: AbortSignal
  /** The lock key's create revision: every later holder of this workspace's lock has a greater one. */
  fencingToken: bigint
  /** The etcd key of the lock. */
  key: string
}

/**
 * Why the agent of `record` is dead, when this machine can prove it: the record names this boot
 * (so this machine, not another with the same host name) and the truth table finds its pid exited
 * or reused. Undefined when it may still run, or runs elsewhere.
 */
function deadPredecessor(record: Partial<AgentRecord> | undefined): string | undefined {
  if (!record || typeof record.pid !== 'number' || typeof record.machine !== 'string' || !record.bootId || typeof record.since !== 'string') return undefined
  const judge = new Judge()
  if (record.bootId !== judge.bootId) return undefined
  const verdict = judge.judge({
    version: 1,
    id: '0000000000000000',
    cwd: '/',
    name: 'wsreg publish',
    pid: record.pid,
    pidStartTime: record.pidStartTime ?? null,
    bootId: record.bootId,
    host: record.machine,
    pidNamespace: record.pidNamespace ?? null,
    timeNamespace: record.timeNamespace ?? null,
    startedAt: record.since,
    updatedAt: record.since,
  })
  return verdict.status === 'dead' && verdict.reason !== 'rebooted' ? (verdict.reason ?? 'exited') : undefined
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** A random token naming one publishing agent. */
export function agentToken(): string {
  return randomUUID()
}
