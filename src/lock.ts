import { createHash } from 'node:crypto'
import type { Server } from 'node:net'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { RegistryError, isErrno } from './errors.js'
import { hostName, inspectProcess, type ProcessProbe } from './identity.js'
import { canonicalCwd, idOfCanonical, realPath } from './paths.js'
import { createFileLockMechanism, lockOpenFlags, openWithExlock, type LockMechanism } from './lockfile.js'
import { compareAndDelete, ensureDir, readEntryFile, writeAtomic } from './store.js'

/** Who holds a workspace lock, as far as its side file tells. */
export interface LockHolder {
  /** Process holding the lock. */
  pid: number
  /** Host name of the holder. */
  host: string
  /** When the holder took the lock (ISO-8601 UTC). */
  since: string
  /** True when the lock is held by a claim (`registry.claim()`), whose entry follows the lock. */
  claim?: true
}

/** Options of `registry.lock()`. */
export interface LockOptions {
  /**
   * How long to keep retrying, with backoff, while another holder has the lock.
   * @default 0 (fail at once)
   */
  waitMs?: number
}

/** A lock this process holds. */
export interface HeldLock {
  /** Give the lock up; safe to call more than once. */
  release(): Promise<void>
}

/** Name of the side file that records the holder of workspace `id` (ignored by the entry scanner). */
export const LOCK_FILE = (id: string): string => `${id}.lock`
/** Side files as found in the registry folder. */
export const LOCK_FILE_NAME = /^([0-9a-f]{16})\.lock$/
/** Temp and aside files of side-file writers (`<id>.lock.<suffix>`); a killed holder's are debris like entry temp files. */
export const LOCK_TEMP_NAME = /^[0-9a-f]{16}\.lock\..+$/

const MAX_BACKOFF_MS = 250

// The folder is resolved like a cwd, so a registry folder under a symlinked parent has one address before and after it exists.
const addressKey = (dir: string, key: string): string => createHash('sha256').update(`${realPath(dir)}\0${key}`).digest('hex').slice(0, 32)

/**
 * Linux: an abstract-namespace unix socket (freed by the kernel when its last descriptor closes, even on SIGKILL).
 * The namespace is shared by all users of a network namespace, so the uid is part of the name.
 * Windows: a named pipe, which the kernel likewise frees with its process.
 */
function socketMechanism(win32: boolean): LockMechanism {
  return {
    address(dir, key) {
      if (!win32) return `\0wsreg-lock/${process.getuid?.() ?? 0}/${addressKey(dir, key)}`
      const user = createHash('sha256').update(userInfo().username).digest('hex').slice(0, 8)
      return `\\\\?\\pipe\\wsreg-lock-${user}-${addressKey(dir, key)}`
    },
    async take(address) {
      const server = await bind(address)
      return server && (() => new Promise<void>((resolve) => server.close(() => resolve())))
    },
    state: probeByConnect,
  }
}

/** Bind the lock's address: a server when we got it, null when someone (this process included) holds it. */
// node:net is loaded when a lock is first taken or probed, not by every `wsreg` start.
async function bind(address: string): Promise<Server | null> {
  const { createServer } = await import('node:net')
  return new Promise((resolve, reject) => {
    // A probe (see lockState) connects and is hung up on at once.
    const server = createServer((socket) => socket.destroy())
    server.once('error', (error) => (isErrno(error, 'EADDRINUSE') ? resolve(null) : reject(error)))
    server.listen({ path: address, exclusive: true }, () => {
      server.unref() // a held lock never keeps the process alive
      resolve(server)
    })
  })
}

/** Whether a socket or pipe lock is held, asked by connecting (the holder hangs up at once), never by binding. */
async function probeByConnect(address: string): Promise<'held' | 'free'> {
  const { connect } = await import('node:net')
  return new Promise((resolve) => {
    const socket = connect({ path: address })
    socket.once('connect', () => {
      socket.destroy()
      resolve('held')
    })
    socket.once('error', () => resolve('free'))
  })
}

/** This platform's lock: a socket or pipe (Linux, Windows), a file taken with O_EXLOCK (macOS, BSDs), or none. */
function platformMechanism(): LockMechanism | null {
  if (process.platform === 'linux' || process.platform === 'win32') return socketMechanism(process.platform === 'win32')
  return lockOpenFlags(process.platform) === null ? null : createFileLockMechanism(openWithExlock())
}

let mechanism: LockMechanism | null = platformMechanism()

/** Replace the lock mechanism (tests run the macOS lock-file protocol on Linux through this); returns the undo. */
export function useLockMechanism(replacement: LockMechanism | null): () => void {
  const previous = mechanism
  mechanism = replacement
  plainLocks.clear()
  return () => {
    mechanism = previous
    plainLocks.clear()
  }
}

/** The address of lock `key` (a workspace id, or `name\0<name>`) in registry `dir`, or null when this platform has no lock. */
function lockAddress(dir: string, key: string): string | null {
  return mechanism === null ? null : mechanism.address(dir, key)
}

/** Remove lock files a killed holder left (macOS, BSDs), each only after taking its lock: their paths. */
export function sweepLockFiles(dir: string, dryRun: boolean): string[] {
  return mechanism?.sweep?.(dir, dryRun) ?? []
}

// Waits run on the monotonic clock: a wall-clock step (NTP, a suspended VM, an admin) neither stalls nor cuts them short.
const monotonicMs = (): number => performance.now()

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Throws `E_INVALID` unless `waitMs` is a number of milliseconds ≥ 0. */
export function checkWait(waitMs: number): void {
  if (!Number.isFinite(waitMs) || waitMs < 0) {
    throw new RegistryError('E_INVALID', `Invalid waitMs ${String(waitMs)}: pass a number of milliseconds ≥ 0.`)
  }
}

function unsupported(): RegistryError {
  return new RegistryError(
    'E_UNSUPPORTED',
    `Workspace locks need an abstract unix socket (Linux), a named pipe (Windows) or open(2) with O_EXLOCK (macOS, BSDs); ${process.platform} has none of them, and a lock file without a kernel lock would need a staleness guess. See https://github.com/wsreg/workspace-registry/blob/main/docs/decisions.md.`,
  )
}

/**
 * Take the exclusive lock of workspace `cwd` in registry `dir`; throws `E_LOCKED` (with the holder when known) when held.
 * `forClaim` marks the side file, so a loser knows an entry is on its way.
 */
export async function acquireLock(dir: string, cwd: string, options: LockOptions = {}, forClaim = false): Promise<HeldLock> {
  const waitMs = options.waitMs ?? 0
  checkWait(waitMs)
  const canonical = canonicalCwd(cwd)
  const id = idOfCanonical(canonical)
  const address = lockAddress(dir, id)
  if (mechanism === null || address === null) throw unsupported()
  const deadline = monotonicMs() + waitMs
  for (let delay = 5; ; delay = Math.min(delay * 2, MAX_BACKOFF_MS)) {
    const letGo = await mechanism.take(address)
    if (letGo) return hold(letGo, dir, id, forClaim ? undefined : address)
    const remaining = deadline - monotonicMs()
    if (remaining <= 0) {
      const holder = await holderOf(dir, id)
      const by = holder ? ` by pid ${holder.pid}${holder.pid === process.pid ? ' (this process)' : ''} on ${holder.host} since ${holder.since}` : ''
      throw new RegistryError('E_LOCKED', `Workspace ${canonical} is locked${by}: wait for it to finish, or pass waitMs to wait for it.`, {
        cwd: canonical,
        holder,
      })
    }
    // Jitter keeps a crowd of waiters from retrying in lockstep.
    await sleep(Math.min(remaining, delay * (0.5 + Math.random())))
  }
}

// A winner writes its side file right after binding; a loser of a close race may look in between.
const SIDE_FILE_PATIENCE_MS = 100

async function holderOf(dir: string, id: string): Promise<LockHolder | undefined> {
  const deadline = monotonicMs() + SIDE_FILE_PATIENCE_MS
  for (;;) {
    const holder = lockHolder(dir, id)
    if (holder || monotonicMs() >= deadline) return holder
    await sleep(5)
  }
}

/**
 * Take the lock of workspace name `name` in registry `dir` (no side file: the entries say who runs under a name),
 * retrying for `waitMs`; null when still held. Held only while a claim checks the name and writes its entry.
 */
export async function acquireNameLock(dir: string, name: string, waitMs: number): Promise<HeldLock | null> {
  // A NUL cannot occur in a workspace id, so a name never shares an address with a workspace.
  const address = lockAddress(dir, `name\0${name}`)
  if (mechanism === null || address === null) throw unsupported()
  const deadline = monotonicMs() + waitMs
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    const letGo = await mechanism.take(address)
    if (letGo) return { release: letGo }
    const remaining = deadline - monotonicMs()
    if (remaining <= 0) return null
    await sleep(Math.min(remaining, delay * (0.5 + Math.random())))
  }
}

/**
 * Plain locks (`lock()`, not a claim's) this process holds, by address: whether a claim of this process uses one,
 * and, when its `lock()` caller released it meanwhile, what lets the kernel lock go once the claim is done with it.
 */
interface PlainLock {
  adopted: boolean
  whenFree?: (() => Promise<void>) | undefined
}
const plainLocks = new Map<string, PlainLock>()

/**
 * The plain lock of workspace `cwd` when this process holds one (`lock()` then `claim()`), for a claim to use; null
 * when it holds none, or a claim already uses it. Releasing the result leaves the lock to its `lock()` caller.
 */
export function adoptLock(dir: string, cwd: string): HeldLock | null {
  const address = lockAddress(dir, idOfCanonical(canonicalCwd(cwd)))
  const held = address === null ? undefined : plainLocks.get(address)
  if (!held || held.adopted) return null
  held.adopted = true
  return {
    async release() {
      held.adopted = false
      const letGo = held.whenFree
      held.whenFree = undefined
      await letGo?.()
    },
  }
}

/** `plainAddress`: the address of a plain lock (not a claim's), which a claim of this process may adopt. */
function hold(kernelLetGo: () => Promise<void>, dir: string, id: string, plainAddress: string | undefined): HeldLock {
  const holder: Record<string, unknown> = { pid: process.pid, host: hostName(), since: new Date().toISOString(), pidStartTime: inspectProcess(process.pid).startTime }
  const plain: PlainLock | undefined = plainAddress === undefined ? undefined : { adopted: false }
  if (plain === undefined) holder.claim = true
  else plainLocks.set(plainAddress as string, plain)
  const record = `${JSON.stringify(holder)}\n`
  let wrote = false
  try {
    ensureDir(dir)
    writeAtomic(dir, LOCK_FILE(id), record)
    wrote = true
  } catch {
    // The side file only improves messages; a read-only registry still locks.
  }
  let released: Promise<void> | undefined
  return {
    release() {
      const letGo = () => {
        // Drop the side file while still holding, and only if it is still ours.
        if (wrote) {
          try {
            compareAndDelete(dir, LOCK_FILE(id), Buffer.from(record))
          } catch {
            // the kernel lock is what counts
          }
        }
        return kernelLetGo()
      }
      if (released) return released
      if (plainAddress !== undefined) plainLocks.delete(plainAddress)
      // A claim of this process still uses this lock: it stays held (the claim stays exclusive) until that claim lets go.
      if (plain?.adopted) {
        plain.whenFree = letGo
        released = Promise.resolve()
      } else {
        released = letGo()
      }
      return released
    },
  }
}

type HolderRecord = LockHolder & { pidStartTime?: unknown; claim?: unknown }

function parseRecord(bytes: Buffer): HolderRecord | undefined {
  let value: unknown
  try {
    value = JSON.parse(bytes.toString('utf8'))
  } catch {
    return undefined
  }
  const record = value as Partial<HolderRecord> | null
  if (!record || !Number.isSafeInteger(record.pid) || typeof record.host !== 'string' || typeof record.since !== 'string') return undefined
  return record as HolderRecord
}

/** Whether the process a side file names has ended (or its pid was reused); one whose identity is hidden has not. */
function holderEnded(record: HolderRecord, inspect?: (pid: number) => ProcessProbe): boolean {
  const probe = inspectProcess(record.pid, inspect)
  if (probe.state === 'gone' || probe.state === 'zombie') return true
  return typeof record.pidStartTime === 'string' && probe.startTime !== null && probe.startTime !== record.pidStartTime
}

/** The holder recorded in the side file of workspace `id`, if that process still runs; the file never decides who holds the lock. */
export function lockHolder(dir: string, id: string): LockHolder | undefined {
  const read = readEntryFile(join(dir, LOCK_FILE(id)))
  if (read.kind !== 'ok') return undefined
  const record = parseRecord(read.bytes)
  // A side file left by a SIGKILLed holder names a dead (or reused) pid: say nothing rather than something false.
  if (!record || holderEnded(record)) return undefined
  const holder: LockHolder = { pid: record.pid, host: record.host, since: record.since }
  if (record.claim === true) holder.claim = true
  return holder
}

/**
 * The bytes of workspace `id`'s side file when it names a process of this host that has ended (a SIGKILLed
 * holder's leftover), else null (`inspect`: a judgement's batch inspector). Deleting exactly these bytes (compare-and-delete) is safe: a new holder
 * writes a new record, and the kernel lock never depended on the file.
 */
export function staleLockRecord(dir: string, id: string, inspect?: (pid: number) => ProcessProbe): Buffer | null {
  const read = readEntryFile(join(dir, LOCK_FILE(id)))
  if (read.kind !== 'ok') return null
  const record = parseRecord(read.bytes)
  if (!record || record.host !== hostName()) return null
  return holderEnded(record, inspect) ? read.bytes : null
}

/** Whether workspace `id` is locked right now, asked without keeping the lock (sockets: a connect; lock files: a brief take). */
export async function lockState(dir: string, id: string): Promise<'held' | 'free' | 'unsupported'> {
  const address = lockAddress(dir, id)
  if (mechanism === null || address === null) return 'unsupported'
  return mechanism.state(address)
}
