/** Result of probing a workspace's `url`: reachable or not. Never used to decide pruning. */
export type Health = 'up' | 'down'

/** Options of {@link probeUrls}. */
export interface ProbeOptions {
  /**
   * Probes in flight at once.
   * @default 8
   */
  concurrency?: number
  /**
   * Total time one probe may take before it counts as down, in ms: a deadline, not an idle timeout,
   * so an endpoint that trickles a byte now and then cannot hold it open.
   * @default 1000
   */
  timeoutMs?: number | undefined
  /**
   * Total time all probes of one listing may take, in ms; probes not finished by then count as down
   * and urls not yet probed get no health.
   * @default 5000
   */
  deadlineMs?: number
}

/** Any HTTP answer (even a 500) means the endpoint is reachable; refusals and timeouts mean down. */
async function probeOne(url: string, timeoutMs: number, listing: AbortSignal): Promise<Health> {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return 'down'
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return 'down'
  const { request } = parsed.protocol === 'https:' ? await import('node:https') : await import('node:http')
  return new Promise<Health>((resolve) => {
    // agent: false, so no keep-alive socket outlives the probe and holds the process open.
    const req = request(parsed, { method: 'HEAD', agent: false }, (res) => {
      res.resume()
      req.destroy()
      finish('up')
    })
    // Node timers run on the monotonic clock, so a wall-clock step neither fires nor delays them.
    const timer = setTimeout(() => req.destroy(new Error('probe deadline passed')), timeoutMs)
    const abort = (): void => void req.destroy(new Error('listing deadline passed'))
    listing.addEventListener('abort', abort, { once: true })
    if (listing.aborted) abort()
    function finish(health: Health): void {
      clearTimeout(timer)
      listing.removeEventListener('abort', abort)
      resolve(health)
    }
    req.on('error', () => finish('down'))
    req.end()
  })
}

/** Probe each url (undefined: no probe) with bounded parallelism; results line up with the input. */
export async function probeUrls(urls: ReadonlyArray<string | undefined>, options: ProbeOptions = {}): Promise<Array<Health | undefined>> {
  const concurrency = Math.max(1, options.concurrency ?? 8)
  const timeoutMs = options.timeoutMs ?? 1000
  const results: Array<Health | undefined> = new Array(urls.length).fill(undefined)
  const listing = new AbortController()
  const deadline = setTimeout(() => listing.abort(), options.deadlineMs ?? 5000)
  let next = 0
  async function worker(): Promise<void> {
    while (next < urls.length && !listing.signal.aborted) {
      const index = next++
      const url = urls[index]
      if (url) results[index] = await probeOne(url, timeoutMs, listing.signal)
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, urls.length) }, worker))
  } finally {
    clearTimeout(deadline)
  }
  return results
}
