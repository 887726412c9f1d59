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
