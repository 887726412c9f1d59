import { basename } from 'node:path'
import type { Etcd3, Lease } from 'etcd3'
import { parseEntry, sameProcess, serializeEntry, type Entry } from '../entry.js'
import { RegistryError } from '../errors.js'
import { captureIdentity, inspectProcess } from '../identity.js'
import { idOfCanonical, recordableCwd } from '../paths.js'
import type { ClaimInput, ClaimPatch } from '../claim.js'
import { Judge } from '../status.js'
import { leaseLoss } from './connection.js'

/** Options of {@link EtcdStore.claim}. */
export interface FleetClaimOptions {
  /**
   * How long the entry outlives this process if it dies without releasing it (rounded up to whole seconds).
   * @default the store's TTL
   */
  leaseMs?: number
  /**
   * How long to wait for a live owner to go before giving up with `E_LOCKED`.
   * @default 0
   */
  waitMs?: number
}

/** A workspace this process owns in etcd, under a lease of its own kept alive while it runs. */
export interface FleetClaim {
  /** The entry as last written. */
  readonly entry: Entry
  /** The etcd key of the entry. */
  readonly key: string
  /** Aborted, with `RegistryError` `E_LOCKED` (`details.lost: true`), once the lease is lost and the entry may be gone or another's. */
  readonly signal: AbortSignal
  /** Rewrite the entry with `patch`; `E_LOCKED` when the claim was lost. */
  update(patch: ClaimPatch): Promise<Entry>
  /** Revoke the lease (the entry leaves the fleet at once); true when the claim was still held. */
  release(): Promise<boolean>
  /** `await using claim = await store.claim(…)` releases it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void>
}

/** What the claim needs of its store. */
export interface ClaimContext {
  client: Etcd3
  host: string
  ttlSeconds: number
  key(id: string, host?: string): string
  fail(error: unknown): RegistryError
}

const MAX_BACKOFF_MS = 250

/** The entry this process writes for `input`, composed as the local registry composes one. */
function compose(input: ClaimInput, startedAt?: string): Entry {
  if (typeof input !== 'object' || input === null) throw new RegistryError('E_INVALID', 'claim() needs an object such as { cwd: "/path/to/workspace" }.')
  const cwd = recordableCwd(input.cwd)
  const pid = input.pid ?? process.pid
  const probe = pid > 0 ? inspectProcess(pid) : null
  if (probe && (probe.state === 'gone' || probe.state === 'zombie')) throw new RegistryError('E_INVALID', `Process ${pid} is not running: pass the pid of a live process.`)
  const identity = captureIdentity(pid, probe)
  const now = new Date().toISOString()
  // `host` is the machine's name, as in a file; the name it is published under is in the key.
  const entry: Entry = { version: 1, id: idOfCanonical(cwd), cwd, name: input.name ?? (basename(cwd) || cwd), pid, ...identity, startedAt: startedAt ?? now, updatedAt: now }
  if (input.url !== undefined) entry.url = input.url
  if (input.meta !== undefined) entry.meta = input.meta
  // The same validation every reader applies: an entry no one could read is refused here.
  const parsed = parseEntry(serializeEntry(entry), entry.id)
  if (!parsed.ok) throw new RegistryError('E_INVALID', `Invalid claim of ${cwd}: ${parsed.problem}.`)
  return parsed.entry
}

/** True when `current`'s owner is provably dead here (this host and boot; exited or pid reused). */
function provablyDead(current: Entry): boolean {
  const verdict = new Judge().judge(current)
  return verdict.status === 'dead' && verdict.reason !== 'rebooted'
}

/**
 * Claim a workspace in etcd for this process: the entry is created under the key of (host, id) on
 * a lease of its own, only if no live owner holds it. An owner proven dead on this machine is
 * replaced at once; any other waits out `waitMs`, then `E_LOCKED` with `details.pid` and `entry`.
 */
export async function claimInStore(store: ClaimContext, input: ClaimInput, options: FleetClaimOptions = {}): Promise<FleetClaim> {
  const leaseMs = options.leaseMs ?? store.ttlSeconds * 1000
  if (!Number.isFinite(leaseMs) || leaseMs <= 0) throw new RegistryError('E_INVALID', `Invalid leaseMs ${String(leaseMs)}: pass a positive number of milliseconds.`)
  const ttl = Math.max(1, Math.ceil(leaseMs / 1000))
  let entry = compose(input)
  const key = store.key(entry.id)
  const client = store.client
  const lease = client.lease(ttl)
  const loss = leaseLoss(lease, ttl, `The claim of ${entry.cwd}`)
  let version: string
  try {
    const leaseId = await lease.grant()
    const deadline = performance.now() + (options.waitMs ?? 0)
    for (let backoff = 5; ; backoff = Math.min(backoff * 2, MAX_BACKOFF_MS)) {
      const created = await client.if(key, 'Create', '==', 0).then(client.put(key).value(serializeEntry(entry)).lease(leaseId)).else(client.get(key)).commit()
      if (created.succeeded) {
        version = created.header.revision
        break
      }
      const kv = created.responses[0]?.response_range?.kvs[0]
      const parsed = kv ? parseEntry(kv.value.toString('utf8'), entry.id) : undefined
      const current = parsed?.ok ? parsed.entry : undefined
      // A value that does not parse (a newer writer's, say) proves nothing about its owner: it is held, not taken over.
      if (kv && current && (provablyDead(current) || sameProcess(current, entry))) {
        // A dead owner's, or our own earlier claim: take the key over unless it changed meanwhile.
        if (sameProcess(current, entry)) entry = { ...entry, startedAt: current.startedAt }
        const moved = await client.if(key, 'Mod', '==', kv.mod_revision).then(client.put(key).value(serializeEntry(entry)).lease(leaseId)).commit()
        if (moved.succeeded) {
          // The key's old lease is not revoked: it may be a publishing agent's, holding every entry of its host.
          // The key has moved to our lease; the old lease lapses (or lives on) with whatever else it holds.
          version = moved.header.revision
          break
        }
        continue
      }
      if (kv && performance.now() >= deadline) {
        throw new RegistryError('E_LOCKED', `Workspace ${entry.cwd} on ${store.host} is claimed by pid ${current?.pid ?? '?'}: stop it, or wait for it with waitMs.`, { pid: current?.pid, entry: current })
      }
      await new Promise((resolve) => setTimeout(resolve, backoff * (0.5 + Math.random())))
    }
  } catch (error) {
    loss.stop()
    await lease.revoke().catch(() => lease.release())
    throw error instanceof RegistryError ? error : store.fail(error)
  }
  return held(store, lease, loss, key, entry, version, input)
}

async function held(store: ClaimContext, lease: Lease, loss: ReturnType<typeof leaseLoss>, key: string, first: Entry, firstVersion: string, input: ClaimInput): Promise<FleetClaim> {
  let entry = first
  let version = firstVersion
  let released = false
  let stopWatching: (() => void) | undefined
  const release = async (): Promise<boolean> => {
    if (released) return false
    released = true
    stopWatching?.()
    loss.stop()
    const held = !loss.signal.aborted
    // Revoking the lease deletes the key with it; a key someone took over is on their lease and stays.
    await lease.revoke().catch(() => lease.release())
    return held
  }
  if (input.cleanupOnExit ?? entry.pid === process.pid) {
    // Installed before the claim is handed back, as for a local claim: a signal that comes right after must still revoke.
    const { onExit } = await import('signal-exit')
    stopWatching = onExit((_code, signal) => {
      if (!signal) return undefined
      // Keep the process up until the revoke is sent (at most a second), then end it by the same signal.
      const end = (): void => void process.kill(process.pid, signal)
      setTimeout(end, 1000).unref()
      void release().finally(end)
      return true
    })
  }
  return {
    get entry() {
      return entry
    },
    key,
    signal: loss.signal,
    async update(patch) {
      if (released || loss.signal.aborted) throw new RegistryError('E_LOCKED', `The claim of ${entry.cwd} was ${released ? 'released' : 'lost'}: claim it again before updating.`, { cwd: entry.cwd })
      const next = compose({ cwd: entry.cwd, pid: entry.pid, name: patch.name ?? entry.name, url: 'url' in patch ? patch.url : entry.url, meta: 'meta' in patch ? patch.meta : entry.meta }, entry.startedAt)
      const leaseId = await lease.grant()
      const response = await store.client.if(key, 'Mod', '==', version).then(store.client.put(key).value(serializeEntry(next)).lease(leaseId)).commit().catch((error: unknown) => {
        throw store.fail(error)
      })
      if (!response.succeeded) throw new RegistryError('E_LOCKED', `Workspace ${entry.cwd} was claimed by another process since; this claim no longer owns it.`, { cwd: entry.cwd })
      entry = next
      version = response.header.revision
      return entry
    },
    release,
    async [Symbol.asyncDispose]() {
      await release()
    },
  }
}
