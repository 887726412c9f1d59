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
   * Time one probe may take before it counts as down, in ms.
   * @default 1000
   */
  timeoutMs?: number
}

/** Any HTTP answer (even a 500) means the endpoint is reachable; refusals and timeouts mean down. */
async function probeOne(url: string, timeoutMs: number): Promise<Health> {
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
    const req = request(parsed, { method: 'HEAD', agent: false, timeout: timeoutMs }, (res) => {
      res.resume()
      req.destroy()
      resolve('up')
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve('down'))
    req.end()
  })
}

/** Probe each url (undefined: no probe) with bounded parallelism; results line up with the input. */
export async function probeUrls(urls: ReadonlyArray<string | undefined>, options: ProbeOptions = {}): Promise<Array<Health | undefined>> {
  const concurrency = Math.max(1, options.concurrency ?? 8)
  const timeoutMs = options.timeoutMs ?? 1000
  const results: Array<Health | undefined> = new Array(urls.length).fill(undefined)
  let next = 0
  async function worker(): Promise<void> {
    while (next < urls.length) {
      const index = next++
      const url = urls[index]
      if (url) results[index] = await probeOne(url, timeoutMs)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, urls.length) }, worker))
  return results
}
