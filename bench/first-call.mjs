// One fresh process: import, then the first list() of its life, and its peak RSS growth.
// Usage: node bench/first-call.mjs <ours|base> <dir>
import { performance } from 'node:perf_hooks'

const [side, dir] = process.argv.slice(2)
const list = side === 'ours'
  ? await (async () => {
    const dist = process.env.WSREG_BENCH_DIST ?? new URL('../dist', import.meta.url).pathname
    const { Registry } = await import(`${dist}/index.js`)
    const registry = new Registry({ dir })
    return () => registry.list()
  })()
  : await (async () => {
    const { rawList } = await import('./baseline.mjs')
    return async () => rawList(dir)
  })()
const rssBefore = process.memoryUsage.rss()
const start = performance.now()
const rows = await list()
const ms = performance.now() - start
const peakKiB = process.resourceUsage().maxRSS
process.stdout.write(JSON.stringify({ ms, rows: rows.length, rssGrowthMB: Math.max(0, peakKiB * 1024 - rssBefore) / 2 ** 20 }))
