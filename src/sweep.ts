import { lstatSync, type Stats } from 'node:fs'

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

/** What a watcher's sweep must re-check, given what the earlier sweeps and looks already judged. */
export class SweepPlan {
  /** The folder's stat taken by the latest folder check, and when. */
  #stat: Stats | undefined
  #statAt = 0
  /** The folder's stat at the last complete look, when it may be trusted to show any later change (see {@link RACY_MS}). */
  #restStamp: string | undefined
  #sweepsSinceLook = 0

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
