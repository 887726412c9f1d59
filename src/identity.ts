import { createRequire } from 'node:module'
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync } from 'node:fs'
import { hostname } from 'node:os'
import { isErrno } from './errors.js'
import { GONE, HIDDEN, existenceOnly, signalProbe } from './probe.js'
import { createDarwinPlatform } from './ps.js'

/** What the operating system says about one pid right now. */
export interface ProcessProbe {
  /** `running`: exists and is not a zombie; `gone`: no such process; `zombie`: exited, not yet reaped; `hidden`: exists but its identity cannot be read. */
  state: 'running' | 'gone' | 'zombie' | 'hidden'
  /** Start identity token (Linux: start time in clock ticks since boot), or null when the platform has none. */
  startTime: string | null
  /** Wall-clock start in ms since the epoch, when known; judges legacy entries that recorded no start identity. */
  startedAtMs: number | null
  /** Why a `hidden` process's identity cannot be read, when it is not a plain read error: `no-proc` (no usable /proc here). */
  hiddenBecause?: 'no-proc'
}

/** The platform seam: everything the registry needs to know about processes and the machine. */
export interface Platform {
  /** True when {@link Platform.inspect} yields a start identity, so a reused pid can be told apart. */
  readonly hasStartIdentity: boolean
  inspect(pid: number): ProcessProbe
  bootId(): string | null
  pidNamespace(): string | null
  /** Time namespace of this process (Linux: inode of `/proc/self/ns/time`); start ticks read in another one are shifted. */
  timeNamespace(): string | null
  /**
   * Whether `seen` (the start token of `pid` read here now) is the start token `recorded` by a writer in time
   * namespace `recordedIn`: `unknown` when the two views cannot be related (another time namespace whose offset is unreadable).
   */
  sameStart(pid: number, recorded: string, recordedIn: string | null | undefined, seen: string): 'same' | 'different' | 'unknown'
  /**
   * An inspector for one judgement (a list, a sweep): where identities cost a process (macOS `ps`), the first question
   * takes one snapshot of every process and the later ones are answered from it; elsewhere it is {@link Platform.inspect}.
   */
  batch(): (pid: number) => ProcessProbe
}

const NO_PROC: ProcessProbe = { state: 'hidden', startTime: null, startedAtMs: null, hiddenBecause: 'no-proc' }

/** What kill(pid, 0) alone can say: gone on ESRCH, otherwise a process whose identity we cannot read. */
function probeBySignal(pid: number, hidden = HIDDEN): ProcessProbe {
  return signalProbe(pid) === 'gone' ? GONE : hidden
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

/** Like {@link once}, but a computation that could not tell (undefined) is not kept: it is asked again next time. */
function onceKnown<T>(compute: () => T | undefined, meanwhile: T): () => T {
  let value: T | undefined
  return () => (value ??= compute()) ?? meanwhile
}

// /proc describes our processes only when it is mounted and is the procfs of our own PID namespace (`/proc/self`
// names our pid): in a chroot, a sandbox or `unshare -p` without a fresh /proc, /proc/<pid> is absent or another
// namespace's process, so it proves nothing and kill(pid, 0) decides. A failed readlink other than "no such
// file" proves nothing either: it is not kept, and meanwhile /proc is not trusted.
const procIsOurs = onceKnown(() => {
  try {
    return readlinkSync('/proc/self') === String(process.pid)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? false : undefined
  }
}, false)

// With hidepid, /proc hides other users' processes: a missing /proc entry then proves nothing. Until the mount
// table has been read (EMFILE at the first look), assume it hides them.
const procHidesPids = onceKnown(() => {
  const mounts = readText('/proc/self/mountinfo')
  if (mounts === null) return undefined
  return mounts.split('\n').some((line) => / \/proc /.test(line) && /hidepid=(?!0|off)/.test(line))
}, true)

/** Linux: start ticks from /proc/<pid>/stat, boot id, PID namespace. */
export function createLinuxPlatform(): Platform {
  const bootTimeMs = once(() => {
    const match = /^btime (\d+)$/m.exec(readText('/proc/stat') ?? '')
    return match ? Number(match[1]) * 1000 : null
  })
  const bootId = once(() => readText('/proc/sys/kernel/random/boot_id')?.trim() || null)
  const pidNamespace = once(() => namespaceOf('/proc/self/ns/pid'))
  const timeNamespace = once(() => namespaceOf('/proc/self/ns/time'))
  const ownBoottimeOffset = once((): bigint | null => {
    const here = timeNamespace()
    if (here === null) return procIsOurs() ? 0n : null // kernels before 5.6 have no time namespaces
    return boottimeOffset('self', here)
  })

  function inspect(pid: number): ProcessProbe {
    if (!procIsOurs()) return probeBySignal(pid, NO_PROC)
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
      return probeBySignal(pid)
    }
    const stat = parseProcStat(text)
    if (!stat) return HIDDEN
    if (stat.state === 'Z') return { state: 'zombie', startTime: stat.startTicks, startedAtMs: null }
    if (stat.state === 'X') return GONE
    const boot = bootTimeMs()
    const startedAtMs = boot === null ? null : boot + (Number(stat.startTicks) * 1000) / CLOCK_TICKS_PER_SECOND
    return { state: 'running', startTime: stat.startTicks, startedAtMs }
  }

  // Start ticks in /proc/<pid>/stat are shown shifted by the reader's boottime offset (time namespaces, CRIU):
  // a token recorded in another namespace is moved into ours by the difference of the two offsets.
  function sameStart(pid: number, recorded: string, recordedIn: string | null | undefined, seen: string): 'same' | 'different' | 'unknown' {
    const here = timeNamespace()
    if (!recordedIn || recordedIn === here) {
      if (recorded === seen) return 'same'
      // A writer that did not say its namespace may have had another offset than ours, unless ours is zero.
      return recordedIn || ownBoottimeOffset() === 0n ? 'different' : 'unknown'
    }
    const ours = ownBoottimeOffset()
    // The owner still lives in the recorded namespace, so its offsets are that namespace's.
    const theirs = boottimeOffset(String(pid), recordedIn)
    if (ours === null || theirs === null || !/^\d+$/.test(recorded) || !/^\d+$/.test(seen)) return 'unknown'
    const expectedNs = BigInt(recorded) * NS_PER_TICK + ours - theirs
    const distance = BigInt(seen) * NS_PER_TICK - expectedNs
    // Offsets need not be whole ticks, so both views may round a different way: one tick apart is the same start.
    return distance > -NS_PER_TICK && distance < NS_PER_TICK ? 'same' : 'different'
  }

  return { hasStartIdentity: true, inspect, bootId, pidNamespace, timeNamespace, sameStart, batch: () => inspect }
}

const NS_PER_TICK = 1_000_000_000n / BigInt(CLOCK_TICKS_PER_SECOND)

/** The inode of a namespace link such as `/proc/self/ns/pid`, or null when it cannot be read. */
function namespaceOf(link: string): string | null {
  try {
    return /\[(\d+)\]/.exec(readlinkSync(link))?.[1] ?? null
  } catch {
    return null
  }
}

/**
 * The boottime offset (ns) of time namespace `namespace`, read through process `who` (`self` or a pid) that is a member
 * of it; null when `who` is not in it, or when its `timens_offsets` (which shows its children's namespace) is another one's.
 */
function boottimeOffset(who: string, namespace: string): bigint | null {
  if (namespaceOf(`/proc/${who}/ns/time`) !== namespace || namespaceOf(`/proc/${who}/ns/time_for_children`) !== namespace) return null
  const match = /^boottime\s+(-?\d+)\s+(\d+)$/m.exec(readText(`/proc/${who}/timens_offsets`) ?? '')
  return match ? BigInt(match[1] as string) * 1_000_000_000n + BigInt(match[2] as string) : null
}

/**
 * Platforms without /proc: existence is all that can be known without a native addon or a
 * subprocess per pid, so entries there carry no start identity and are never called dead on a guess.
 */
export function createPortablePlatform(): Platform {
  return {
    hasStartIdentity: false,
    inspect: existenceOnly,
    batch: () => existenceOnly,
    bootId: () => null,
    pidNamespace: () => null,
    timeNamespace: () => null,
    sameStart: (_pid, recorded, _recordedIn, seen) => (recorded === seen ? 'same' : 'different'),
  }
}

function platformOf(name: string): Platform {
  if (name === 'linux') return createLinuxPlatform()
  if (name === 'darwin') return createDarwinPlatform()
  return createPortablePlatform()
}

/** The platform this process runs on (replaced only by tests, through {@link usePlatform}). */
export let platform: Platform = platformOf(process.platform)

/** Replace the platform seam (tests drive the macOS platform on Linux through it); returns the undo. */
export function usePlatform(replacement: Platform): () => void {
  const previous = platform
  platform = replacement
  selfProbe = undefined
  return () => {
    platform = previous
    selfProbe = undefined
  }
}

const selfPid = process.pid
let selfProbe: ProcessProbe | undefined

/**
 * Inspect `pid` (with `inspect`, a judgement's batch inspector, when given); pids ≤ 0 are never probed (kill(0) and
 * kill(-1) address groups, not a process).
 */
export function inspectProcess(pid: number, inspect: (pid: number) => ProcessProbe = platform.inspect): ProcessProbe {
  if (!Number.isSafeInteger(pid) || pid <= 0) return GONE
  // This process is running and its start identity never changes: one /proc read serves every write it makes.
  // Only a full answer is kept; a read that failed (EMFILE at the first write) is asked again next time.
  if (pid !== selfPid) return inspect(pid)
  if (selfProbe) return selfProbe
  const probe = inspect(pid)
  if (probe.state === 'running' && probe.startTime !== null) selfProbe = probe
  return probe
}

/** The identity recorded in an entry for `pid`: start token, boot id, host, PID and time namespace. */
export interface ProcessIdentity {
  pidStartTime: string | null
  bootId: string | null
  host: string
  pidNamespace: string | null
  timeNamespace: string | null
}

/** Capture the identity of a live `pid` now (pid 0: no process, only the machine's identity); pass `probe` when already taken. */
export function captureIdentity(pid: number, probe: ProcessProbe | null = pid > 0 ? inspectProcess(pid) : null): ProcessIdentity {
  return {
    pidStartTime: probe?.state === 'running' ? probe.startTime : null,
    bootId: platform.bootId(),
    host: hostname(),
    pidNamespace: platform.pidNamespace(),
    timeNamespace: platform.timeNamespace(),
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
    if (!procIsOurs()) return null
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
  // A /proc that is not ours, or hides pids, cannot show every member: then only kill() can answer.
  if (process.platform === 'linux' && procIsOurs() && !procHidesPids()) {
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
