import type { Entry } from './entry.js'
import { isRunning, type Verdict } from './status.js'

/** One readable file of a workspace: the canonical `<id>.json` or a legacy `<id>-<pid>.json`. */
export interface Candidate {
  /** File name inside the registry folder. */
  file: string
  /** True for the legacy per-process layout. */
  legacy: boolean
  bytes: Buffer
  entry: Entry
  /** The file's mtime; NaN where a list had no need to read it (see `ScanOptions.mtimes`). */
  mtimeMs: number
  verdict: Verdict
}

function rank(candidate: Candidate): number {
  if (isRunning(candidate.verdict.status)) return 3
  if (candidate.verdict.status === 'idle') return 2
  return 1
}

/**
 * The file that speaks for a workspace when several do: a running owner beats an idle row beats a
 * dead one; among equals the canonical file wins, then the newest `startedAt`, then the newest write.
 */
export function pickWinner(candidates: readonly Candidate[]): Candidate | undefined {
  let best: Candidate | undefined
  for (const candidate of candidates) {
    if (!best || compare(candidate, best) > 0) best = candidate
  }
  return best
}

function compare(a: Candidate, b: Candidate): number {
  return (
    rank(a) - rank(b) ||
    Number(!a.legacy) - Number(!b.legacy) ||
    a.entry.startedAt.localeCompare(b.entry.startedAt) ||
    a.entry.updatedAt.localeCompare(b.entry.updatedAt) ||
    a.file.localeCompare(b.file)
  )
}

/**
 * The canonical form of a legacy winner: the owner's own fields, nothing of this machine. An owner judged by a
 * clock comparison may be a stranger (a future timestamp, another host's file), and a start identity recorded
 * for it here would later be taken as the owner's own, which is what lets `reap` signal (DESIGN.md §2).
 */
export function upgradeLegacy(entry: Entry): Entry {
  return { ...entry, version: 1 }
}
