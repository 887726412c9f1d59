// A tiny timing harness: samples in ms, median and min/max, and the table printer.
import { performance } from 'node:perf_hooks'

/** Summary of timing samples (ms). */
export function summarize(samples) {
  const sorted = [...samples].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  return { median, min: sorted[0], max: sorted[sorted.length - 1], n: sorted.length }
}

/**
 * Time `ours` and `base` `repeats` times each, alternating which goes first so drift and
 * caches hurt both alike. `setup` (untimed) runs before every timed call.
 */
export async function pair({ ours, base, repeats, warmup = 1, setup }) {
  const a = []
  const b = []
  for (let i = 0; i < warmup; i++) {
    if (setup) await setup('ours')
    await ours()
    if (setup) await setup('base')
    await base()
  }
  for (let i = 0; i < repeats; i++) {
    const order = i % 2 ? [['base', base, b], ['ours', ours, a]] : [['ours', ours, a], ['base', base, b]]
    for (const [side, fn, into] of order) {
      if (setup) await setup(side)
      const start = performance.now()
      await fn()
      into.push(performance.now() - start)
    }
  }
  return { ours: summarize(a), base: summarize(b) }
}

function unit(ms) {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`
  if (ms >= 1) return `${ms.toFixed(ms >= 100 ? 0 : ms >= 10 ? 1 : 2)} ms`
  return `${(ms * 1000).toFixed(0)} µs`
}

function cell(s) {
  if (!s) return '-'
  return `${unit(s.median)} (${unit(s.min)}–${unit(s.max)})`
}

/** The one table: N, operation, ours, baseline, ratio, target. */
export function formatTable(rows) {
  const header = ['N', 'operation', 'ours median (min–max)', 'baseline median (min–max)', 'ratio', 'target']
  const body = rows.map((row) => [
    String(row.n),
    row.op,
    row.text ?? cell(row.ours),
    row.baseText ?? cell(row.base),
    row.ratio === undefined ? '-' : `${row.ratio.toFixed(2)}×`,
    row.target ?? '',
  ])
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((r) => [...r[i]].length)))
  const line = (r) => r.map((c, i) => c + ' '.repeat(widths[i] - [...c].length)).join('  ').trimEnd()
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n')
}
