import type { Lease } from 'etcd3'
import { RegistryError } from '../errors.js'

/** The shape of etcd3's fault-handling policies (cockatiel's `IPolicy`, reduced to what the client calls). */
export interface Policy {
  execute<T>(fn: () => T | Promise<T>): Promise<T>
}

/** How long an endpoint that failed is skipped while other endpoints remain. */
const COOLDOWN_MS = 1000

/**
 * Fault handling for the etcd client. Retries and backoff over time are ours (the publisher backs
 * off and says so): the client's default breaker would keep refusing calls for 5 s after etcd is
 * back. What the client must still do is fail over: with several endpoints, a call that finds one
 * unreachable is retried once on each other endpoint, and the failed one is skipped for a second
 * (etcd3 moves to the next endpoint only when a host policy refuses without calling through).
 */
export function failoverPolicies(endpoints: number, recoverable: (error: unknown) => boolean): { host: () => Policy; global: Policy } {
  const global: Policy = {
    async execute(fn) {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn()
        } catch (error) {
          if (attempt >= endpoints || !recoverable(error)) throw error
        }
      }
    },
  }
  const host = (): Policy => {
    let skipUntil = 0
    let failure: unknown
    return {
      async execute(fn) {
        if (endpoints > 1 && performance.now() < skipUntil) throw failure
        try {
          return await fn()
        } catch (error) {
          if (endpoints > 1 && recoverable(error)) {
            skipUntil = performance.now() + COOLDOWN_MS
            failure = error
          }
          throw error
        }
      },
    }
  }
  return { host, global }
}

/**
 * Follow a lease's keep-alives and say when etcd stops answering and when it answers again. A
 * broken stream is reported at once; a silent one (a partition, a frozen etcd) once a keep-alive
 * has gone unanswered for one keep-alive interval (etcd3 itself waits a whole TTL). Timed on the
 * monotonic clock.
 */
export function monitorKeepAlive(lease: Lease, intervalMs: number, report: { down(reason: string): void; up(): void }): { stop(): void } {
  let down = false
  let watchdog: NodeJS.Timeout | undefined
  let stopped = false
  const fail = (reason: string): void => {
    clearTimeout(watchdog)
    watchdog = undefined
    if (down || stopped) return
    down = true
    report.down(reason)
  }
  lease.on('keepaliveFailed', (error: unknown) => fail(clientReason(error)))
  lease.on('keepaliveFired', () => {
    if (watchdog || stopped) return
    watchdog = setTimeout(() => fail(`no keep-alive answer within ${(intervalMs / 1000).toFixed(1)} s`), intervalMs)
    watchdog.unref()
  })
  lease.on('keepaliveSucceeded', () => {
    clearTimeout(watchdog)
    watchdog = undefined
    if (!down || stopped) return
    down = false
    report.up()
  })
  return {
    stop() {
      stopped = true
      clearTimeout(watchdog)
    },
  }
}

/** A client error's message without gRPC's decoration ("14 UNAVAILABLE: … Resolution note: "). */
export function clientReason(error: unknown): string {
  return String((error as Error)?.message ?? error).replace(/^\d+ [A-Z_]+: /, '').replace(/\s*Resolution note:\s*$/, '').trim()
}

/**
 * Watch a lock's or claim's lease: abort when etcd3 reports it lost, or when no renewal came within the TTL of
 * the last one's sending, timed on the monotonic clock (so a paused process or a wall-clock step
 * cannot make an expired lease look held). etcd3's own expiry check uses the wall clock.
 */
export function leaseLoss(lease: Lease, ttlSeconds: number, subject: string, again = 'lock again'): { signal: AbortSignal; stop(): void } {
  const controller = new AbortController()
  let granted = false
  const sentAt = performance.now()
  let pendingSince: number | undefined
  let watchdog: NodeJS.Timeout | undefined
  let stopped = false
  const lose = (why: string, cause?: unknown): void => {
    if (stopped || !granted) return
    stop()
    const error = new RegistryError('E_LOCKED', `${subject} was lost (${why}); another process may hold it now. Stop the work it guarded and ${again}.`, { lost: true }, cause === undefined ? undefined : { cause })
    controller.abort(error)
    // The lease may still live on the server: revoke it so the key goes now, not at the end of the TTL.
    lease.revoke().catch(() => lease.release())
  }
  const arm = (renewedAt: number): void => {
    clearTimeout(watchdog)
    watchdog = setTimeout(() => lose(`not renewed within its ${ttlSeconds} s lease`), Math.max(0, renewedAt + ttlSeconds * 1000 - performance.now()))
    watchdog.unref()
  }
  const onGranted = (): void => {
    granted = true
    if (!stopped) arm(sentAt)
  }
  const onFired = (): void => void (pendingSince ??= performance.now())
  const onRenewed = (): void => {
    arm(pendingSince ?? performance.now())
    pendingSince = undefined
  }
  const onLost = (error: unknown): void => lose('etcd dropped its lease', error)
  function stop(): void {
    stopped = true
    clearTimeout(watchdog)
    lease.off('keepaliveFired', onFired)
    lease.off('keepaliveSucceeded', onRenewed)
  }
  void lease.grant().then(onGranted, () => undefined)
  lease.on('keepaliveFired', onFired)
  lease.on('keepaliveSucceeded', onRenewed)
  lease.on('lost', onLost)
  return { signal: controller.signal, stop }
}

