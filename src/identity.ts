import { createRequire } from 'node:module'
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync } from 'node:fs'
import { hostname } from 'node:os'
import { isErrno } from './errors.js'

/** What the operating system says about one pid right now. */
export interface ProcessProbe {
  /** `running`: exists and is not a zombie; `gone`: no such process; `zombie`: exited, not yet reaped; `hidden`: exists but its identity cannot be read. */
  state: 'running' | 'gone' | 'zombie' | 'hidden'
  /** Start identity token (Linux: start time in clock ticks since boot), or null when the platform has none. */
  startTime: string | null
  /** Wall-clock start in ms since the epoch, when known; judges legacy entries that recorded no start identity. */
  startedAtMs: number | null
}

/** The platform seam: everything the registry needs to know about processes and the machine. */
export interface Platform {
  /** True when {@link Platform.inspect} yields a start identity, so a reused pid can be told apart. */
  readonly hasStartIdentity: boolean
  inspect(pid: number): ProcessProbe
  bootId(): string | null
  pidNamespace(): string | null
}

const GONE: ProcessProbe = { state: 'gone', startTime: null, startedAtMs: null }
const HIDDEN: ProcessProbe = { state: 'hidden', startTime: null, startedAtMs: null }

/** kill(pid, 0): ESRCH means gone, EPERM means it exists but belongs to someone else. */
function signalProbe(pid: number): 'exists' | 'gone' {
  try {
    process.kill(pid, 0)
    return 'exists'
  } catch (error) {
    return isErrno(error, 'EPERM') ? 'exists' : 'gone'
  }
}

function once<T>(compute: () => T): () => T {
  let done = false
  let value: T
  return () => {
    if (!done) {
      value = compute()
      done = true
    }
    return value
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'latin1')
  } catch {
    return null
  }
}

// USER_HZ is fixed at 100 by the kernel ABI on every mainstream architecture; /proc reports start times in it.
const CLOCK_TICKS_PER_SECOND = 100

const statBuffer = Buffer.allocUnsafe(4096)

/**
 * Parse `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses,
 * so fields are counted from the last `)`.
 */
export function parseProcStat(text: string): { state: string; startTicks: string } | null {
  const close = text.lastIndexOf(')')
  if (close < 0) return null
  const fields = text.slice(close + 2).split(' ')
  const state = fields[0] // field 3
  const startTicks = fields[19] // field 22
  if (!state || !startTicks || !/^\d+$/.test(startTicks)) return null
  return { state, startTicks }
}

/** Linux: start ticks from /proc/<pid>/stat, boot id, PID namespace. */
export function createLinuxPlatform(): Platform {
  const bootTimeMs = once(() => {
    const match = /^btime (\d+)$/m.exec(readText('/proc/stat') ?? '')
    return match ? Number(match[1]) * 1000 : null
  })
  // With hidepid, /proc hides other users' processes: a missing /proc entry then proves nothing.
  const procHidesPids = once(() => {
    const mounts = readText('/proc/self/mountinfo') ?? ''
    return mounts.split('\n').some((line) => / \/proc /.test(line) && /hidepid=(?!0|off)/.test(line))
  })
  const bootId = once(() => readText('/proc/sys/kernel/random/boot_id')?.trim() || null)
  const pidNamespace = once(() => {
    try {
      return /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? null
    } catch {
      return null
    }
  })

  function inspect(pid: number): ProcessProbe {
    let text: string
    try {
      const fd = openSync(`/proc/${pid}/stat`, 'r')
      try {
        text = statBuffer.toString('latin1', 0, readSync(fd, statBuffer, 0, statBuffer.length, 0))
      } finally {
        closeSync(fd)
      }
    } catch (error) {
      if (isErrno(error, 'ENOENT', 'ESRCH') && !procHidesPids()) return GONE
      return signalProbe(pid) === 'exists' ? HIDDEN : GONE
    }
    const stat = parseProcStat(text)
    if (!stat) return HIDDEN
    if (stat.state === 'Z') return { state: 'zombie', startTime: stat.startTicks, startedAtMs: null }
    if (stat.state === 'X') return GONE
    const boot = bootTimeMs()
    const startedAtMs = boot === null ? null : boot + (Number(stat.startTicks) * 1000) / CLOCK_TICKS_PER_SECOND
    return { state: 'running', startTime: stat.startTicks, startedAtMs }
  }

  return { hasStartIdentity: true, inspect, bootId, pidNamespace }
}

/**
 * Platforms without /proc: existence is all that can be known without a native addon or a
 * subprocess per pid, so entries there carry no start identity and are never called dead on a guess.
 */
export function createPortablePlatform(): Platform {
  return {
    hasStartIdentity: false,
    inspect: (pid) => (signalProbe(pid) === 'exists' ? { state: 'running', startTime: null, startedAtMs: null } : GONE),
    bootId: () => null,
    pidNamespace: () => null,
  }
}

/** The platform this process runs on. */
export const platform: Platform = process.platform === 'linux' ? createLinuxPlatform() : createPortablePlatform()

const selfPid = process.pid
let selfProbe: ProcessProbe | undefined

/** Inspect `pid`; pids ≤ 0 are never probed (kill(0) and kill(-1) address groups, not a process). */
export function inspectProcess(pid: number): ProcessProbe {
  if (!Number.isSafeInteger(pid) || pid <= 0) return GONE
  // This process is running and its start identity never changes: one /proc read serves every write it makes.
  if (pid === selfPid) return (selfProbe ??= platform.inspect(pid))
  return platform.inspect(pid)
}

/** The identity recorded in an entry for `pid`: start token, boot id, host and PID namespace. */
export interface ProcessIdentity {
  pidStartTime: string | null
  bootId: string | null
  host: string
  pidNamespace: string | null
}

/** Capture the identity of a live `pid` now (pid 0: no process, only the machine's identity); pass `probe` when already taken. */
export function captureIdentity(pid: number, probe: ProcessProbe | null = pid > 0 ? inspectProcess(pid) : null): ProcessIdentity {
  return {
    pidStartTime: probe?.state === 'running' ? probe.startTime : null,
    bootId: platform.bootId(),
    host: hostname(),
    pidNamespace: platform.pidNamespace(),
  }
}

/** The host name entries written here carry. */
export function hostName(): string {
  return hostname()
}

/** The process group of `pid` (Linux: `/proc/<pid>/stat` field 5; elsewhere `ps`), or null when it cannot be read. */
export function processGroup(pid: number): number | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null
  if (process.platform === 'linux') {
    const text = readText(`/proc/${pid}/stat`)
    const close = text?.lastIndexOf(')') ?? -1
    if (!text || close < 0) return null
    const group = Number(text.slice(close + 2).split(' ')[2])
    return Number.isSafeInteger(group) && group > 0 ? group : null
  }
  // Loaded here only: child_process costs every `wsreg` start a few ms, and only non-Linux group reaping needs it.
  const { spawnSync } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process')
  const result = spawnSync('ps', ['-o', 'pgid=', '-p', String(pid)], { encoding: 'utf8' })
  const group = Number(result.stdout?.trim())
  return result.status === 0 && Number.isSafeInteger(group) && group > 0 ? group : null
}

/**
 * Whether process group `pgid` still has a member that is not a zombie. Zombies count for kill(-pgid, 0), and an
 * init that never reaps (common in containers) would keep a dead group "alive" forever, so Linux scans /proc.
 */
export function groupAlive(pgid: number): boolean {
  if (process.platform === 'linux') {
    let names: string[]
    try {
      names = readdirSync('/proc')
    } catch {
      names = []
    }
    for (const name of names) {
      if (!/^\d+$/.test(name)) continue
      const text = readText(`/proc/${name}/stat`)
      const close = text?.lastIndexOf(')') ?? -1
      if (!text || close < 0) continue
      const [state, , group] = text.slice(close + 2).split(' ')
      if (Number(group) === pgid && state !== 'Z' && state !== 'X') return true
    }
    if (names.length > 0) return false
  }
  try {
    process.kill(-pgid, 0)
    return true
  } catch (error) {
    return isErrno(error, 'EPERM')
  }
}
