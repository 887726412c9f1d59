// A tiny timing harness: samples in ms, median and min/max, and the table printer.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'

/** Summary of timing samples (ms). */
export function summarize(samples) {
  const sorted = [...samples].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  return { median, min: sorted[0], max: sorted[sorted.length - 1], n: sorted.length }
}

/**
 * Time `ours`, `base` and (when given) `floor` `repeats` times each, rotating which goes first so drift and caches
 * hurt all alike. `setup(side)` (untimed) runs before every call. A side that times itself (a spawned process
 * timing its own inner loop) returns `{ ms }`, which is taken instead of the wall time around the call.
 */
export async function pair({ ours, base, floor, repeats, warmup = 1, setup }) {
  const sides = [['ours', ours], ['base', base]]
  if (floor) sides.push(['floor', floor])
  const samples = Object.fromEntries(sides.map(([side]) => [side, []]))
  for (let i = 0; i < warmup; i++) {
    for (const [side, fn] of sides) {
      if (setup) await setup(side)
      await fn()
    }
  }
  for (let i = 0; i < repeats; i++) {
    for (let k = 0; k < sides.length; k++) {
      const [side, fn] = sides[(i + k) % sides.length]
      if (setup) await setup(side)
      const start = performance.now()
      const result = await fn()
      const wall = performance.now() - start
      samples[side].push(typeof result?.ms === 'number' ? result.ms : wall)
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([side, list]) => [side, summarize(list)]))
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

/** The one table: N, operation, ours, fair baseline and ratio, C floor and ratio, target. */
export function formatTable(rows) {
  const header = ['N', 'operation', 'ours median (min–max)', 'baseline median (min–max)', 'ratio', 'C floor median (min–max)', 'ratio', 'target']
  const body = rows.map((row) => [
    String(row.n),
    row.op,
    row.text ?? cell(row.ours),
    row.baseText ?? cell(row.base),
    row.ratio === undefined ? '-' : `${row.ratio.toFixed(2)}×`,
    row.floor ? cell(row.floor) : '-',
    row.floor ? `${(row.ours.median / row.floor.median).toFixed(2)}×` : '-',
    row.target ?? '',
  ])
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((r) => [...r[i]].length)))
  const line = (r) => r.map((c, i) => c + ' '.repeat(widths[i] - [...c].length)).join('  ').trimEnd()
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n')
}

/**
 * Compile the C + /proc floor (`bench/floor.c`) with `cc -O2` into `dir`; null, with the reason on stderr, when
 * there is no compiler (or it fails): the bench then runs without floor columns.
 */
export function buildFloor(source, dir) {
  const out = join(dir, 'floor')
  const cc = process.env.CC || 'cc'
  const result = spawnSync(cc, ['-O2', '-o', out, source], { encoding: 'utf8' })
  if (result.status === 0) return out
  const why = result.error?.code === 'ENOENT' ? `no C compiler (${cc}) on PATH` : `${cc} failed: ${(result.stderr || String(result.error)).trim()}`
  process.stderr.write(`C floor skipped: ${why}; set CC or install one (e.g. apt-get install gcc) to get the floor columns\n`)
  return null
}

/** Run the floor once: its rounds' self-timed figures, `[{ ms, count }]` (process start-up excluded). */
export function runFloor(binary, args) {
  const result = spawnSync(binary, args, { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`floor ${args.join(' ')} failed: ${result.stderr || result.error}`)
  return result.stdout.trim().split('\n').map((line) => {
    const [ms, count] = line.split(' ').map(Number)
    return { ms, count }
  })
}
