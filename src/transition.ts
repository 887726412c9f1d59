import type { Entry } from './entry.js'
import { isRunning, type Status, type StatusReason, type Verdict } from './status.js'

/** Why a workspace went down. */
export type DownReason = 'removed' | 'exited' | 'pid-reused' | 'rebooted' | 'lease-expired'

/** One workspace as the watcher last saw it. */
export interface WatchedEntry {
  /** The entry as read. */
  entry: Entry
  /** Its status when read. */
  status: Status
  /** Why the entry has its status (`cwd-missing`, `foreign-host`, …), or null. */
  reason: StatusReason | null
}

/** The initial snapshot: the rows `list()` would show (running and idle), sorted by name then cwd. */
export interface ReadyEvent {
  /** Event type. */
  type: 'ready'
  /** The rows `list()` would show at start. */
  entries: WatchedEntry[]
}

/** A workspace became running: a new owner, idle → alive, or a restart by another process. */
export interface UpEvent {
  /** Event type. */
  type: 'up'
  /** The entry of the new owner. */
  entry: Entry
  /** `alive`, or `orphan`/`unknown` for a process that runs without its folder or cannot be judged. */
  status: Status
}

/** A running workspace stopped running; `entry` is the last version seen while it ran. */
export interface DownEvent {
  /** Event type. */
  type: 'down'
  /** The last version seen while it ran. */
  entry: Entry
  /** `removed`, `exited`, `pid-reused`, `rebooted` or `lease-expired` (an owner nobody here can judge stopped renewing). */
  reason: DownReason
}

/** Same owner (or no owner), other fields or a status that is neither up nor down; null = no row. */
export interface ChangeEvent {
  /** Event type. */
  type: 'change'
  /** The entry before (null: there was no row). */
  previous: Entry | null
  /** The entry now (null: the row went away). */
  entry: Entry | null
  /** The status before. */
  previousStatus: Status | null
  /** The status now. */
  status: Status | null
}

/** An unexpected failure; the watcher keeps going. */
export interface ErrorEvent {
  /** Event type. */
  type: 'error'
  /** What went wrong. */
  error: Error
}

/** Everything a {@link RegistryWatcher} reports, as yielded by its async iterator. */
export type RegistryEvent = ReadyEvent | UpEvent | DownEvent | ChangeEvent | ErrorEvent

/** What the watcher knows of one workspace id: its winning file's entry and verdict, or nothing. */
export type Observation = { entry: Entry; verdict: Verdict } | undefined

/** The status of a row `list()` shows; dead and gone rows are on their way out and absent ones never were. */
function isListed(observation: Observation): boolean {
  return observation !== undefined && (isRunning(observation.verdict.status) || observation.verdict.status === 'idle')
}

function running(observation: Observation): boolean {
  return observation !== undefined && isRunning(observation.verdict.status)
}

// A legacy entry gains its start identity and boot id when migrated: null matches anything, so that is no new owner.
function compatible(a: string | null, b: string | null): boolean {
  return a === b || a === null || b === null
}

/** One process owns both entries: pid, start identity, boot and host agree. */
export function sameOwner(a: Entry, b: Entry): boolean {
  return a.pid === b.pid && a.host === b.host && compatible(a.pidStartTime, b.pidStartTime) && compatible(a.bootId, b.bootId)
}

/** The down reason a dead verdict implies, or null when the verdict is not dead. */
function deathReason(verdict: Verdict): DownReason | null {
  if (verdict.status !== 'dead') return null
  if (verdict.reason === 'pid-reused' || verdict.reason === 'rebooted' || verdict.reason === 'lease-expired') return verdict.reason
  return 'exited'
}

// A rewrite that only bumps updatedAt or renews the lease (a heartbeat) is not news to anyone watching.
function sameContent(a: Entry, b: Entry): boolean {
  return JSON.stringify({ ...a, updatedAt: '', leaseUntil: '' }) === JSON.stringify({ ...b, updatedAt: '', leaseUntil: '' })
}

/**
 * The events one observed transition of a workspace yields (README "Watching" has the table).
 * `judgeNow` re-judges the previous entry when it vanished or was replaced, to say why its owner went down.
 */
export function transition(previous: Observation, next: Observation, judgeNow: (entry: Entry) => Verdict): Array<UpEvent | DownEvent | ChangeEvent> {
  const wasRunning = running(previous)
  const isNowRunning = running(next)
  if (previous && next && wasRunning && isNowRunning) {
    if (!sameOwner(previous.entry, next.entry)) {
      return [down(previous.entry, judgeNow), { type: 'up', entry: next.entry, status: next.verdict.status }]
    }
    if (previous.verdict.status !== next.verdict.status || !sameContent(previous.entry, next.entry)) return [change(previous, next)]
    return []
  }
  if (previous && wasRunning) {
    if (next !== undefined && sameOwner(previous.entry, next.entry)) {
      const reason = deathReason(next.verdict)
      if (reason) return [{ type: 'down', entry: previous.entry, reason }]
    }
    return [down(previous.entry, judgeNow)]
  }
  if (next && isNowRunning) return [{ type: 'up', entry: next.entry, status: next.verdict.status }]
  if (!isListed(previous) && !isListed(next)) return []
  if (previous && next && previous.verdict.status === next.verdict.status && sameContent(previous.entry, next.entry)) return []
  return [change(previous, next)]
}

function down(entry: Entry, judgeNow: (entry: Entry) => Verdict): DownEvent {
  return { type: 'down', entry, reason: deathReason(judgeNow(entry)) ?? 'removed' }
}

function change(previous: Observation, next: Observation): ChangeEvent {
  return {
    type: 'change',
    previous: previous?.entry ?? null,
    entry: next?.entry ?? null,
    previousStatus: previous?.verdict.status ?? null,
    status: next?.verdict.status ?? null,
  }
}
