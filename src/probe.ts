import { isErrno } from './errors.js'
import type { ProcessProbe } from './identity.js'

/** Probes every platform shares: what kill(pid, 0) alone can say. */
export const GONE: ProcessProbe = { state: 'gone', startTime: null, startedAtMs: null }
export const HIDDEN: ProcessProbe = { state: 'hidden', startTime: null, startedAtMs: null }

/** kill(pid, 0): only ESRCH proves the process gone; EPERM means it exists but belongs to someone else. */
export function signalProbe(pid: number): 'exists' | 'gone' | 'unknown' {
  try {
    process.kill(pid, 0)
    return 'exists'
  } catch (error) {
    if (isErrno(error, 'ESRCH')) return 'gone'
    return isErrno(error, 'EPERM') ? 'exists' : 'unknown'
  }
}

/** What kill(pid, 0) alone says, as a probe: running without an identity, gone on ESRCH, hidden on any other error. */
export function existenceOnly(pid: number): ProcessProbe {
  const found = signalProbe(pid)
  return found === 'exists' ? { state: 'running', startTime: null, startedAtMs: null } : found === 'gone' ? GONE : HIDDEN
}
