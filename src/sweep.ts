/**
 * The resting sweep: what a watcher's periodic sweep must re-check, given what earlier sweeps already judged.
 * A sweep runs every `intervalMs` (2 s by default) and almost always finds nothing changed, so re-listing the
 * folder and fully re-judging every entry each time cost an idle watcher at 10k entries +39 MB and 4% of a core
 * (issue 16). Each check now runs at the cadence its fault needs:
 *
 * - Every sweep: the folder's existence and safety (the watcher's), and every owner's liveness, one `/proc` read
 *   per distinct pid, since a SIGKILLed owner touches no file. Only entries whose owner's probe differs from the
 *   one they were judged with are judged again, plus those whose verdict moves with the clock (a lease; a legacy
 *   entry with no start identity).
 * - The listing, when the folder's stat (inode, mtime, ctime, size) moved since the last complete look, when it
 *   cannot prove rest (mtime within {@link RACY_MS} of the look: coarse timestamps), when a read failed, and at
 *   least every {@link LOOK_SWEEPS} sweeps (a file created by a remote clock far behind ours).
 * - In an unchanged folder, the remembered files' identities, a slice each sweep, all over {@link IDENTITY_SWEEPS}
 *   sweeps: an entry rewritten in place (no rename) whose events were lost leaves the folder's stat alone.
 * - Every entry in full (workspace folder gone, marker, Trash), a slice each sweep, all over {@link CWD_SWEEPS}
 *   sweeps: a cwd rarely vanishes, and each check stats several paths; all at once when the machine's identity
 *   (host, boot, namespaces, Trash folders) changed.
 *
 * The watcher owns one {@link SweepPlan}: it asks whether to look and what is due, and records every judgement.
 */
import { lstatSync, type Stats } from 'node:fs'
import type { Entry } from './entry.js'
import type { ProcessProbe } from './identity.js'
import type { Judge } from './status.js'

/**
 * An unchanged folder stat is trusted only when the folder's mtime was this much older than the look that
 * recorded it: timestamps are coarse (a jiffy on ext4 without multigrain timestamps, two seconds on FAT), so an
 * entry renamed in during the same tick as the last change leaves mtime, ctime and size as they were ("racy git").
 */
export const RACY_MS = 3000
/** Every entry's workspace folder (cwd gone, marker, Trash) is re-checked over this many sweeps, a slice per sweep. */
export const CWD_SWEEPS = 30
/**
 * In an unchanged folder, every remembered file's identity is compared over this many sweeps, a slice per sweep:
 * the check for what the folder's stat cannot show, an entry rewritten in place (no rename) whose events were lost.
 */
export const IDENTITY_SWEEPS = 60
/**
 * The listing is re-read at least every this many sweeps, even in an unchanged folder: the backstop for a file
 * created without changing the folder's stat (a remote filesystem whose clock is far behind ours, within one tick).
 */
export const LOOK_SWEEPS = 150

/** What a watcher's sweep must re-check, given what the earlier sweeps and looks already judged (see the module's notes). */
export class SweepPlan {
  /** The folder's stat taken by the latest folder check, and when. */
  #stat: Stats | undefined
  #statAt = 0
  /** The folder's stat at the last complete look, when it may be trusted to show any later change (see {@link RACY_MS}). */
  #restStamp: string | undefined
  #sweepsSinceLook = 0
  /** The machine's identity at the last sweep (host, boot, namespaces, Trash): a change re-judges everything. */
  #machine: string | undefined
  /** Workspaces by owner pid (pid > 0), so a sweep probes each owner once and re-judges only the entries of owners that changed. */
  readonly #byPid = new Map<number, Set<string>>()
  /** The probe ({@link keyOf}) every entry of a pid was last judged with; absent when some were judged otherwise. */
  readonly #pidKeys = new Map<number, string>()
  /** Workspaces whose verdict moves with the clock (a lease; a legacy entry with no start identity): judged every sweep. */
  readonly #timed = new Set<string>()
  /** Where the round of full judgements (workspace folders) stands: an iterator over the tracked ids. */
  #cwdCursor: Iterator<string> | undefined
  /** The watcher's snapshot, by workspace id: the round of workspace folders walks it live. */
  readonly #tracked: ReadonlyMap<string, unknown>

  constructor(tracked: ReadonlyMap<string, unknown>) {
    this.#tracked = tracked
  }

  /** The first look judged everything on this machine: later sweeps compare the machine's identity with it. */
  start(judge: Judge): void {
    this.#machine = machineOf(judge)
  }

  /** Stat the registry folder for a check, and remember the stat and its time for the rest rule. */
  statFolder(dir: string): Stats | undefined {
    // The time is taken before the stat, so the racy test errs towards distrust.
    this.#statAt = Date.now()
    this.#stat = lstatSync(dir, { throwIfNoEntry: false })
    return this.#stat
  }

  /**
   * Whether this sweep must re-read the listing: the folder changed since the last complete look (or cannot be
   * shown unchanged), a file whose read failed waits to be read again, or {@link LOOK_SWEEPS} sweeps went by.
   * Counts the sweep.
   */
  mustLook(folderIno: number | undefined, doubted: boolean): boolean {
    return ++this.#sweepsSinceLook >= LOOK_SWEEPS || !this.#resting(folderIno, doubted)
  }

  /** A look at the listing begins: nothing rests until it completes. Returns the stamp to hand to {@link finishLook}. */
  startLook(folderIno: number | undefined): string | undefined {
    const stamp = this.#stampNow(folderIno)
    this.#restStamp = undefined
    return stamp
  }

  /** A look completed: the folder's stat taken before it ({@link startLook}) is what later sweeps compare with. */
  finishLook(stamp: string | undefined): void {
    this.#restStamp = stamp
    this.#sweepsSinceLook = 0
  }

  /** How many remembered files a resting sweep re-checks, so all are checked over {@link IDENTITY_SWEEPS} sweeps. */
  identitySlice(files: number): number {
    return Math.ceil(files / IDENTITY_SWEEPS)
  }

  /**
   * Keep the per-pid index, the probes entries were judged with, and the clock-bound set in step with the snapshot:
   * workspace `id` went from `previous` to `next` (either absent), judged just now with `judge`.
   */
  record(id: string, previous: Entry | undefined, next: Entry | undefined, judge: Judge): void {
    if (previous && previous.pid !== 0 && previous.pid !== next?.pid) {
      const ids = this.#byPid.get(previous.pid)
      if (ids?.delete(id) && ids.size === 0) {
        this.#byPid.delete(previous.pid)
        this.#pidKeys.delete(previous.pid)
      }
    }
    if (next && next.pid !== 0) {
      // Judged just now: with the probe the judge holds. The first entry of a pid sets the pid's probe; a later one
      // judged with another probe than its siblings makes the next sweep re-judge them all.
      const key = keyOf(judge.probe(next.pid))
      let ids = this.#byPid.get(next.pid)
      if (!ids) this.#byPid.set(next.pid, (ids = new Set()))
      if (ids.size === 0 || (ids.size === 1 && ids.has(id))) this.#pidKeys.set(next.pid, key)
      else if (this.#pidKeys.get(next.pid) !== key) this.#pidKeys.delete(next.pid)
      ids.add(id)
    }
    if (next && next.pid !== 0 && (next.leaseUntil !== undefined || next.pidStartTime === null)) this.#timed.add(id)
    else this.#timed.delete(id)
  }

  /**
   * The workspaces this sweep must judge again, in order: the entries of every owner whose probe differs from the
   * one they were judged with (exited, zombie, pid reused, unreadable, readable again; one probe per distinct pid),
   * those whose verdict moves with the clock, then the next slice of the round of workspace folders, or every
   * workspace when the machine's identity changed. Lazy and live: probes are taken as the sweep reaches them, and
   * sets and maps iterate live across the sweep's pauses.
   */
  *due(judge: Judge): Generator<string, void> {
    for (const [pid, ids] of this.#byPid) {
      const key = keyOf(judge.probe(pid))
      if (this.#pidKeys.get(pid) === key) continue
      this.#pidKeys.set(pid, key)
      for (const id of ids) yield id
    }
    for (const id of this.#timed) yield id
    const machine = machineOf(judge)
    const everything = machine !== this.#machine
    this.#machine = machine
    if (everything) this.#cwdCursor = undefined
    let left = everything ? Infinity : Math.ceil(this.#tracked.size / CWD_SWEEPS)
    const cursor = (this.#cwdCursor ??= this.#tracked.keys())
    while (left-- > 0) {
      const next = cursor.next()
      if (next.done) {
        this.#cwdCursor = undefined // the round is done: the next sweep starts another
        break
      }
      yield next.value
    }
  }

  /**
   * Whether the folder is unchanged since the last complete look, so its listing need not be read again: the same
   * inode, mtime, ctime and size, recorded when its mtime was already old enough to show any later change, and no
   * file whose read failed waiting to be read again.
   */
  #resting(folderIno: number | undefined, doubted: boolean): boolean {
    return this.#restStamp !== undefined && this.#restStamp === this.#stampNow(folderIno) && !doubted
  }

  /** The folder's stat from the latest check, as a stamp that may be trusted ({@link RACY_MS}), or undefined. */
  #stampNow(folderIno: number | undefined): string | undefined {
    const stat = this.#stat
    if (stat === undefined || folderIno === undefined || stat.ino !== folderIno) return undefined
    const age = this.#statAt - stat.mtimeMs
    if (!(age > RACY_MS)) return undefined // recent, or in the future (a skewed clock): no proof of rest
    return `${stat.ino}:${stat.mtimeMs}:${stat.ctimeMs}:${stat.size}`
  }
}

/** What a judgement learns from an owner's process: state and start identity. */
function keyOf(probe: ProcessProbe): string {
  return `${probe.state}:${probe.startTime}:${probe.startedAtMs}:${probe.hiddenBecause ?? ''}`
}

/** What every judgement on this machine depends on besides the entry: a change re-judges everything. */
function machineOf(judge: Judge): string {
  return `${judge.host}\0${judge.bootId}\0${judge.pidNamespace}\0${judge.timeNamespace}\0${judge.trashDirs.join('\0')}`
}
