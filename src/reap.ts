import { removeOwned, stillOwned } from './claim.js'
import type { Entry } from './entry.js'
import { RegistryError, isErrno } from './errors.js'
import { groupAlive, inspectProcess, platform, processGroup } from './identity.js'
import { Judge } from './status.js'

/** Options of `registry.reap()`. */
export interface ReapOptions {
  /**
   * How long to wait after SIGTERM before sending SIGKILL, in ms.
   * @default 2000
   */
  graceMs?: number
  /**
   * Signal the owner's whole process group (the owner must lead it), so its children go too.
   * @default false
   */
  signalGroup?: boolean
  /**
   * Say what would happen; signal nothing and delete nothing.
   * @default false
   */
  dryRun?: boolean
}

/**
 * What reaping did: `terminated` (ended after SIGTERM), `killed` (needed SIGKILL), `already-gone`
 * (nothing was running), `identity-mismatch` (the pid now belongs to another process, which was left alone).
 */
export type ReapOutcome = 'terminated' | 'killed' | 'already-gone' | 'identity-mismatch'

/** The result of reaping one workspace. */
export interface ReapResult {
  /** What happened to the process: `terminated` by SIGTERM, `killed` by SIGKILL, `already-gone`, or `identity-mismatch` (not signalled). */
  outcome: ReapOutcome
  /** Workspace id. */
  id: string
  /** Workspace root. */
  cwd: string
  /** The pid the entry recorded. */
  pid: number
  /** True when no entry of that process remains afterwards: deleted here, by its own exit cleanup, or replaced by a successor. False with `dryRun`. */
  removed: boolean
  /** True when nothing was signalled or deleted, only reported. */
  dryRun: boolean
}

const POLL_MS = 20
// After SIGKILL only an uninterruptible sleep (D state) delays the end; past this the entry is kept.
const KILL_WAIT_MS = 5000

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Stop the process of `entry` and delete the entry: SIGTERM, wait up to `graceMs`, SIGKILL, wait, then
 * compare-and-delete. The identity is re-checked before every signal; pid ≤ 1 and this process are never signalled.
 */
export async function reapEntry(dir: string, judging: { marker?: string | undefined; leaseGraceMs?: number | undefined }, entry: Entry, options: ReapOptions = {}): Promise<ReapResult> {
  const graceMs = options.graceMs ?? 2000
  if (!Number.isFinite(graceMs) || graceMs < 0) throw new RegistryError('E_INVALID', `Invalid graceMs ${String(graceMs)}: pass milliseconds ≥ 0.`)
  const dryRun = options.dryRun ?? false
  const { pid } = entry
  const done = (outcome: ReapOutcome, removable = true): ReapResult => ({
    outcome, id: entry.id, cwd: entry.cwd, pid, dryRun, removed: removable && !dryRun && (removeOwned(dir, entry, ['reaped', outcome]) || !stillOwned(dir, entry)),
  })

  // Judged as list() judges it (same marker, same lease grace): reap never deletes what a list would keep.
  const verdict = new Judge(judging.marker, judging.leaseGraceMs).judge(entry)
  if (verdict.status === 'unknown') {
    throw new RegistryError('E_PERM', `Cannot verify who pid ${pid} of ${entry.cwd} is (${verdict.reason}); nothing was signalled and the entry is kept. Reap it on the host that wrote it.`, { entry })
  }
  if (verdict.status === 'dead') return done(verdict.reason === 'exited' || verdict.reason === 'zombie' ? 'already-gone' : 'identity-mismatch')
  if (verdict.status === 'idle' || verdict.status === 'gone') return done('already-gone')
  if (pid <= 1 || pid === process.pid) {
    throw new RegistryError('E_INVALID', `Refusing to signal pid ${pid}${pid === process.pid ? ' (this process)' : ''}; the entry of ${entry.cwd} is kept.`, { entry })
  }
  // A clock comparison (legacy entries) may keep an entry but never names the process to signal: a later
  // stranger can pass it when a timestamp lies (DESIGN.md §2, "Reap needs a recorded identity").
  const recorded = entry.pidStartTime
  if (recorded === null) {
    throw new RegistryError('E_PERM', `The entry of ${entry.cwd} records no start identity for pid ${pid} (a legacy or unverifiable entry), so it cannot be proven to be its owner; nothing was signalled and the entry is kept. Check the process yourself and stop it with kill, or remove the entry with \`wsreg rm\`.`, { entry })
  }
  const group = options.signalGroup ? checkGroup(pid) : false
  if (dryRun) return done('terminated')

  // What the target is right now: 'same' only if its start identity still matches the one the owner recorded.
  const identify = (): 'same' | 'gone' | 'other' => {
    const probe = inspectProcess(pid)
    if (probe.state === 'gone' || probe.state === 'zombie') {
      // The leader's pid cannot be reused while its group lives on, so the group is still the one we checked.
      return group && groupAlive(pid) ? 'same' : 'gone'
    }
    if (probe.state === 'hidden' || probe.startTime === null) return 'other'
    return platform.sameStart(pid, recorded, entry.timeNamespace, probe.startTime) === 'same' ? 'same' : 'other'
  }
  const alive = (): boolean => (group ? groupAlive(pid) : identify() === 'same')
  const send = (signal: NodeJS.Signals): 'sent' | 'gone' | 'other' => {
    const now = identify()
    if (now !== 'same') return now
    try {
      process.kill(group ? -pid : pid, signal)
      return 'sent'
    } catch (error) {
      if (isErrno(error, 'ESRCH')) return 'gone'
      if (isErrno(error, 'EPERM')) {
        throw new RegistryError('E_PERM', `Pid ${pid} of ${entry.cwd} belongs to another user: stop it as that user; the entry is kept.`, { entry })
      }
      throw error
    }
  }
  // A monotonic clock: a wall-clock step (NTP, a suspended VM, an admin) must neither stall nor skip the grace.
  const waitUntilGone = async (ms: number): Promise<boolean> => {
    const deadline = performance.now() + ms
    while (alive()) {
      if (performance.now() >= deadline) return false
      await sleep(POLL_MS)
    }
    return true
  }

  const term = send('SIGTERM')
  if (term === 'gone') return done('already-gone')
  if (term === 'other') return done('identity-mismatch')
  if (await waitUntilGone(graceMs)) return done('terminated')
  // 'gone' or 'other' here means our process ended after SIGTERM after all (and its pid may be reused): it was terminated.
  if (send('SIGKILL') !== 'sent') return done('terminated')
  return done('killed', await waitUntilGone(KILL_WAIT_MS))
}

/** Signalling a group is only sound when `pid` leads it, and never when it is our own group. */
function checkGroup(pid: number): true {
  const group = processGroup(pid)
  if (group !== pid) {
    throw new RegistryError('E_INVALID', `Pid ${pid} does not lead its process group (group ${group ?? 'unknown'}); reap it without signalGroup.`)
  }
  if (processGroup(process.pid) === pid) throw new RegistryError('E_INVALID', `Refusing to signal process group ${pid}: this process is in it.`)
  return true
}
