import { existsSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, sep } from 'node:path'
import type { Entry } from './entry.js'
import { isErrno } from './errors.js'
import { hostName, inspectProcess, platform, type ProcessProbe } from './identity.js'
import { mayBeLossy } from './paths.js'

/** The one classification of an entry (DESIGN.md §2). */
export type Status = 'idle' | 'alive' | 'orphan' | 'dead' | 'gone' | 'unknown'

/** Why an entry has its status, when that is not self-evident. */
export type StatusReason =
  | 'exited'
  | 'zombie'
  | 'pid-reused'
  | 'rebooted'
  | 'cwd-missing'
  | 'in-trash'
  | 'marker-missing'
  | 'foreign-host'
  | 'foreign-pid-namespace'
  | 'identity-unreadable'
  | 'cwd-unverifiable'
  | 'no-proc'
  | 'foreign-time-namespace'
  | 'clock-skew'
  | 'lease-expired'

/** A status and its reason. */
export interface Verdict {
  /** One of the six statuses of the truth table. */
  status: Status
  /** Why, when the status alone does not say (`exited`, `pid-reused`, `cwd-missing`, `foreign-host`, …). */
  reason: StatusReason | null
}

const ALIVE: Verdict = Object.freeze({ status: 'alive', reason: null })
const IDLE: Verdict = Object.freeze({ status: 'idle', reason: null })
// The verdicts of dead owners, shared: a prune of 10,000 entries of exited owners makes no object per entry.
const EXITED: Verdict = Object.freeze({ status: 'dead', reason: 'exited' })
const ZOMBIE: Verdict = Object.freeze({ status: 'dead', reason: 'zombie' })
const PID_REUSED: Verdict = Object.freeze({ status: 'dead', reason: 'pid-reused' })
const REBOOTED: Verdict = Object.freeze({ status: 'dead', reason: 'rebooted' })

/** Statuses that `read` and `list` delete on sight. */
export function isPrunable(status: Status): boolean {
  return status === 'dead' || status === 'gone'
}

/** Statuses whose process is (or may be) running: never pruned. */
export function isRunning(status: Status): boolean {
  return status === 'alive' || status === 'orphan' || status === 'unknown'
}

/** How long past its lease an entry nobody here can judge is still given, for clock skew between writers. */
export const DEFAULT_LEASE_GRACE_MS = 10_000

// btime has one-second resolution and start ticks 10 ms: a legacy owner can seem to start this much after its own write.
const LEGACY_START_SLACK_MS = 2000
// How far before a cached probe an entry's write must lie for that probe to judge it dead without a second look.
const STALE_SLACK_MS = 2000

/**
 * What one judgement needs about this machine, computed once and reused across the entries of a list
 * (probes are cached per pid, so entries sharing an owner cost one /proc read).
 */
export class Judge {
  readonly host = hostName()
  readonly bootId = platform.bootId()
  readonly pidNamespace = platform.pidNamespace()
  readonly timeNamespace = platform.timeNamespace()
  readonly trashDirs: string[]
  readonly #probes = new Map<number, ProcessProbe>()
  // When each cached probe was taken (wall clock): a probe older than an entry's write cannot prove that entry dead.
  readonly #probedAt = new Map<number, number>()
  // One snapshot of every process per judgement where identities cost a process (macOS ps); direct reads elsewhere.
  readonly #inspect = platform.batch()

  /**
   * @param marker file that must exist inside a workspace root for it to count as present
   * @param leaseGraceMs how long past its lease an entry that cannot be judged here stays unknown
   */
  constructor(
    readonly marker?: string,
    readonly leaseGraceMs: number = DEFAULT_LEASE_GRACE_MS,
  ) {
    this.trashDirs = trashDirs()
  }

  probe(pid: number): ProcessProbe {
    let probe = this.#probes.get(pid)
    if (!probe) {
      this.#probedAt.set(pid, Date.now())
      probe = inspectProcess(pid, this.#inspect)
      this.#probes.set(pid, probe)
    }
    return probe
  }

  /**
   * A probe taken (or a snapshot of every process taken) before `entry` was written may show the pid's previous
   * process: a pid reused during a list, its new owner rewriting an entry already listed. Before such a probe calls
   * the entry dead it is taken again, alone and fresh (a recent write is rare; an old one needs no second look).
   */
  #staleFor(entry: Entry, writtenMs: number | undefined): boolean {
    const probedAt = this.#probedAt.get(entry.pid)
    if (probedAt === undefined) return false
    const written = Math.max(Date.parse(entry.updatedAt), writtenMs ?? Number.NaN)
    // Either time unreadable, or the write within the slack of the probe (clocks are coarse): look again.
    return !(written < probedAt - STALE_SLACK_MS)
  }

  /** Why a workspace root does not count as present, or null when it does. */
  workspaceMissing(cwd: string): StatusReason | null {
    // `<cwd>/.` resolves only through a directory: one access() call, no Stats object per entry. A "no" may be
    // a folder we cannot search, so it is confirmed by stat (which also maps ENOTDIR/ENAMETOOLONG to missing).
    if (!existsSync(cwd + sep + '.') && exists(cwd, true) === false) {
      // A name that may have lost bytes in decoding (an older writer's record) is absent only as spelled: no proof.
      return mayBeLossy(cwd) ? 'cwd-unverifiable' : 'cwd-missing'
    }
    if (this.trashDirs.some((trash) => cwd.startsWith(trash))) return 'in-trash'
    if (this.marker && exists(join(cwd, this.marker), false) === false) return 'marker-missing'
    return null
  }

  /**
   * Classify `entry`; `writtenMs` (file mtime) helps judge legacy entries without a start identity. The kernel beats
   * the clock: a lapsed lease only decides an entry nothing here can judge (past the grace), and is otherwise a reason.
   */
  judge(entry: Entry, writtenMs?: number): Verdict {
    const verdict = this.#judge(entry, writtenMs)
    if (entry.leaseUntil === undefined || entry.pid === 0) return verdict
    const lapsedMs = Date.now() - Date.parse(entry.leaseUntil)
    if (!(lapsedMs > 0)) return verdict
    // Only an owner nothing here can judge is decided by its lease; a lossy cwd (the process is known alive) is not.
    if (verdict.status === 'unknown' && verdict.reason !== 'cwd-unverifiable') {
      return { status: lapsedMs > this.leaseGraceMs ? 'dead' : 'unknown', reason: 'lease-expired' }
    }
    if (verdict.status === 'alive') return { status: 'alive', reason: 'lease-expired' }
    return verdict
  }

  #judge(entry: Entry, writtenMs?: number): Verdict {
    const verdict = this.#judgeBy(entry, writtenMs)
    if (verdict.status !== 'dead' || verdict === REBOOTED || !this.#staleFor(entry, writtenMs)) return verdict
    this.#probedAt.set(entry.pid, Date.now())
    this.#probes.set(entry.pid, inspectProcess(entry.pid))
    return this.#judgeBy(entry, writtenMs)
  }

  #judgeBy(entry: Entry, writtenMs?: number): Verdict {
    if (entry.host !== this.host) return { status: 'unknown', reason: 'foreign-host' }
    if (entry.pidNamespace && this.pidNamespace && entry.pidNamespace !== this.pidNamespace) {
      return { status: 'unknown', reason: 'foreign-pid-namespace' }
    }
    if (entry.pid === 0) {
      const missing = this.workspaceMissing(entry.cwd)
      if (missing === 'cwd-unverifiable') return { status: 'unknown', reason: missing }
      return missing ? { status: 'gone', reason: missing } : IDLE
    }
    if (entry.bootId && this.bootId && entry.bootId !== this.bootId) return REBOOTED
    const probe = this.probe(entry.pid)
    if (probe.state === 'gone') return EXITED
    if (probe.state === 'zombie') return ZOMBIE
    if (probe.state === 'hidden') return { status: 'unknown', reason: probe.hiddenBecause === 'no-proc' ? 'no-proc' : 'identity-unreadable' }
    if (entry.pidStartTime !== null) {
      if (probe.startTime === null) return { status: 'unknown', reason: 'identity-unreadable' }
      const same = platform.sameStart(entry.pid, entry.pidStartTime, entry.timeNamespace, probe.startTime)
      if (same === 'different') return PID_REUSED
      // Start ticks that cannot be related across time namespaces prove nothing; nor does a wall-clock comparison,
      // which a stepped clock (btime moves with it) can turn against a live owner.
      if (same === 'unknown') return { status: 'unknown', reason: 'foreign-time-namespace' }
    } else if (probe.startedAtMs !== null) {
      const written = writtenAt(entry, writtenMs)
      if (written === null) return { status: 'unknown', reason: 'clock-skew' }
      if (startedAfter(probe, written)) return PID_REUSED
    }
    const missing = this.workspaceMissing(entry.cwd)
    if (missing === 'cwd-unverifiable') return { status: 'unknown', reason: missing }
    return missing ? { status: 'orphan', reason: missing } : ALIVE
  }
}

/**
 * When an entry was last written, by its own `updatedAt` and the file's mtime (a legacy writer may rewrite its
 * file without it). A time in the future proves nothing (a writer that labels local time as UTC, a skewed clock, a
 * copied file) and would make any later process look like the owner, so it is ignored; null when no time is left.
 */
function writtenAt(entry: Entry, writtenMs?: number): number | null {
  const latestTrusted = Date.now() + LEGACY_START_SLACK_MS
  const times = [Date.parse(entry.updatedAt), writtenMs ?? Number.NaN].filter((time) => time <= latestTrusted)
  return times.length > 0 ? Math.max(...times) : null
}

/** True when the process demonstrably started after `written` (allowing for btime's one-second resolution). */
function startedAfter(probe: ProcessProbe, written: number | null): boolean {
  return probe.startedAtMs !== null && written !== null && probe.startedAtMs > written + LEGACY_START_SLACK_MS
}

/**
 * Whether `path` exists (as a folder when `folder`): false only on proof of absence. A path that cannot
 * exist (ENOTDIR, ENAMETOOLONG, ELOOP) is absent; one we may not look into (EACCES) might be there, so
 * undefined, and an entry is never pruned on that guess.
 */
function exists(path: string, folder: boolean): boolean | undefined {
  try {
    const stat = statSync(path, { throwIfNoEntry: false })
    return stat !== undefined && (!folder || stat.isDirectory())
  } catch (error) {
    return isErrno(error, 'ENOTDIR', 'ENAMETOOLONG', 'ELOOP') ? false : undefined
  }
}

function trashDirs(): string[] {
  const dirs: string[] = []
  let home = process.env.HOME ?? ''
  try {
    home ||= homedir()
  } catch {
    // no home: only XDG_DATA_HOME can name a Trash
  }
  const dataHome = process.env.XDG_DATA_HOME || (home && join(home, '.local', 'share'))
  if (dataHome) dirs.push(join(dataHome, 'Trash') + sep)
  if (home && process.platform === 'darwin') dirs.push(join(home, '.Trash') + sep)
  return dirs
}

/** Classify one entry on its own, with the reason (a list judges many entries with one shared cache). */
export function classify(entry: Entry, options: { marker?: string; leaseGraceMs?: number } = {}): Verdict {
  return new Judge(options.marker, options.leaseGraceMs).judge(entry)
}

/** The status of one entry (DESIGN.md §2): idle, alive, orphan, dead, gone or unknown. */
export function status(entry: Entry, options: { marker?: string } = {}): Status {
  return classify(entry, options).status
}
