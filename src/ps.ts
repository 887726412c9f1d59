import { createRequire } from 'node:module'
import type { Platform, ProcessProbe } from './identity.js'
import { GONE, HIDDEN, existenceOnly, signalProbe } from './probe.js'

/** Options of {@link createDarwinPlatform}. */
export interface DarwinPlatformOptions {
  /**
   * The `ps` program, a name looked up on the `PATH` of `env`, or a path.
   * @default 'ps'
   */
  ps?: string
  /**
   * Environment `ps` runs in; its `LC_ALL` and `TZ` are always replaced (`C`, `UTC0`), so `lstart` reads the same in every zone and locale.
   * @default process.env
   */
  env?: NodeJS.ProcessEnv
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
// strftime("%c") in the C locale: "Wed Dec  2 15:35:00 2026" (the day of the month is space-padded).
const LSTART = /^([A-Z][a-z]{2}) ([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/
const LINE = /^\s*(\d+)(?:\s+(.*?))?\s*$/

/** Seconds since the epoch of an `lstart` printed with `TZ=UTC0 LC_ALL=C`, or null when it is not exactly that form. */
export function parseLstart(text: string): number | null {
  const match = LSTART.exec(text)
  if (!match) return null
  const [, weekday, monthName, day, hours, minutes, seconds, year] = match as unknown as string[]
  const month = MONTHS.indexOf(monthName as string)
  if (month < 0) return null
  const ms = Date.UTC(Number(year), month, Number(day), Number(hours), Number(minutes), Number(seconds))
  const date = new Date(ms)
  // A date that rolled over (Feb 30, 24:00) or a weekday that does not fit was not printed by ps in C/UTC.
  if (date.getUTCDate() !== Number(day) || date.getUTCHours() !== Number(hours) || date.getUTCMinutes() !== Number(minutes) || date.getUTCSeconds() !== Number(seconds)) {
    return null
  }
  return DAYS[date.getUTCDay()] === weekday ? ms / 1000 : null
}

/**
 * Parse `ps -o pid=,lstart=` output: pid → start in seconds since the epoch, or null for a pid whose line could not
 * be read (that pid is then hidden, never dead). Lines without a leading pid are ignored.
 */
export function parsePsStarts(text: string): Map<number, number | null> {
  const starts = new Map<number, number | null>()
  for (const line of text.split('\n')) {
    const match = LINE.exec(line)
    if (!match) continue
    const pid = Number(match[1])
    if (!Number.isSafeInteger(pid) || pid <= 0) continue
    const start = parseLstart(match[2] ?? '')
    // A pid listed twice with two starts cannot be told apart: hidden.
    starts.set(pid, starts.has(pid) && starts.get(pid) !== start ? null : start)
  }
  return starts
}

/** One `ps` run: the starts it listed, or null when ps is missing, failed or timed out. */
type Snapshot = Map<number, number | null> | null

/** The probe of `pid` from a snapshot taken when `listedAll` (every process) or for this pid alone. */
function probeFrom(snapshot: Snapshot, pid: number, listedAll: boolean): ProcessProbe {
  if (snapshot === null) return existenceOnly(pid)
  const start = snapshot.get(pid)
  if (start === undefined) {
    // Not listed: ESRCH proves it gone; one that exists was born after the snapshot (or ps could not see it): unknown.
    if (signalProbe(pid) === 'gone') return GONE
    return listedAll || snapshot.size > 0 ? HIDDEN : existenceOnly(pid)
  }
  if (start === null) return HIDDEN
  return { state: 'running', startTime: String(start), startedAtMs: start * 1000 }
}

/**
 * macOS: the start identity of a pid is its `lstart` (the kernel's recorded start, one-second resolution) read by
 * `ps` with `TZ=UTC0 LC_ALL=C` and kept as seconds since the epoch, so no zone, DST or locale can change the token.
 * A judgement (a list, a sweep) runs one `ps -axo pid=,lstart=` for all its entries; a single question runs
 * `ps -o pid=,lstart= -p <pid>`. When ps cannot run, kill(pid, 0) alone decides: no identity, never dead on a guess.
 */
export function createDarwinPlatform(options: DarwinPlatformOptions = {}): Platform {
  const program = options.ps ?? 'ps'
  const env = { ...(options.env ?? process.env), LC_ALL: 'C', TZ: 'UTC0' }
  let psWorks = true

  function run(args: string[]): { snapshot: Snapshot; status: number | null } {
    // Loaded here only: child_process costs every `wsreg` start a few ms.
    const { spawnSync } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process')
    const result = spawnSync(program, args, { env, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] })
    if (result.error || result.signal || typeof result.stdout !== 'string') {
      psWorks = false
      return { snapshot: null, status: null }
    }
    psWorks = true
    return { snapshot: parsePsStarts(result.stdout), status: result.status }
  }

  function inspect(pid: number): ProcessProbe {
    const { snapshot, status } = run(['-o', 'pid=,lstart=', '-p', String(pid)])
    // ps exits 1 when the pid matched nothing: then kill(pid, 0) tells gone from failing.
    if (snapshot !== null && status !== 0 && status !== 1) {
      psWorks = false
      if (!snapshot.has(pid)) return existenceOnly(pid)
    }
    return probeFrom(snapshot, pid, false)
  }

  function batch(): (pid: number) => ProcessProbe {
    let snapshot: Snapshot | undefined
    return (pid) => {
      if (snapshot === undefined) {
        const taken = run(['-axo', 'pid=,lstart='])
        snapshot = taken.status === 0 ? taken.snapshot : null
        if (taken.status !== 0) psWorks = false
      }
      return probeFrom(snapshot, pid, true)
    }
  }

  return {
    get hasStartIdentity() {
      return psWorks
    },
    inspect,
    batch,
    // kern.bootsessionuuid would cost a process per list: start identities already tell a reboot apart.
    bootId: () => null,
    pidNamespace: () => null,
    timeNamespace: () => null,
    sameStart: (_pid, recorded, _recordedIn, seen) => (recorded === seen ? 'same' : 'different'),
  }
}
