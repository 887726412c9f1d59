import type { Lease } from 'etcd3'

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
