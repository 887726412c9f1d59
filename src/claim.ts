import { join } from 'node:path'
import { parseEntry, sameProcess, type Entry } from './entry.js'
import { RegistryError } from './errors.js'
import { recordEnd, type HistoryEvent } from './history.js'
import { captureIdentity } from './identity.js'
import { acquireLock, acquireNameLock, adoptLock, checkWait, lockHolder, type HeldLock, type LockHolder } from './lock.js'
import { canonicalCwd, idOfCanonical } from './paths.js'
import type { Registry, WriteInput } from './registry.js'
import { compareAndDelete, readEntryFile, unreadableError } from './store.js'

/** What {@link Registry.claim} records, and how it cleans up. */
export interface ClaimInput extends WriteInput {
  /**
   * Remove the entry when this process exits (normally, by an uncaught exception, or by SIGINT, SIGTERM or SIGHUP).
   * @default true when `pid` is this process, false when claiming on behalf of another process
   */
  cleanupOnExit?: boolean
}

/** How {@link Registry.claim} treats a workspace someone else holds. */
export interface ClaimOptions {
  /**
   * How long to keep retrying, with backoff, while another live process holds the workspace.
   * @default 0 (refuse at once with `E_LOCKED`)
   */
  waitMs?: number
  /**
   * Write a heartbeat lease (`leaseUntil`) this long, renewed at a third of it. It lets readers that cannot judge the
   * owner themselves (another host, another PID namespace) tell a crashed owner from a live one.
   * @default undefined (no lease)
   */
  leaseMs?: number
  /**
   * Also refuse (`E_NAME_TAKEN`) while a live workspace with the same name runs at another cwd.
   * @default false
   */
  uniqueName?: boolean
}

/** What {@link Claim.update} may change. */
export interface ClaimPatch {
  /** New human label. */
  name?: string | undefined
  /** New service endpoint (`undefined` removes it). */
  url?: string | undefined
  /** New app-defined data (replaces the old; `undefined` removes it). */
  meta?: Record<string, unknown> | undefined
}

/** A workspace entry this process owns until it exits or calls {@link Claim.release}. */
export interface Claim {
  /** The entry as last written. */
  readonly entry: Entry
  /**
   * Aborted (reason: `RegistryError` `E_LOCKED` with `details.lost`) once the claim is lost: its entry was replaced by
   * another writer, or its lease could not be renewed before it lapsed. Checked on update and every second.
   */
  readonly signal: AbortSignal
  /** Rewrite the entry with `patch`; throws `E_LOCKED` when another process has claimed the workspace since. */
  update(patch: ClaimPatch): Promise<Entry>
  /** Remove the entry if it is still ours, give the lock up, and stop watching for exit; true when something was removed. */
  release(): Promise<boolean>
  /** `await using claim = await registry.claim(…)` releases it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void>
}

/** What a claim needs of its registry. */
export interface ClaimContext {
  /** Write an entry; with `replacing`, only over exactly those bytes (else `E_LOCKED`). */
  write(input: WriteInput & { leaseUntil?: string }, replacing?: Buffer): Entry
  /** The entry of workspace `id` after pruning (dead and gone ones deleted), or undefined. */
  current(id: string): Entry | undefined
  /** Every entry that is not dead or gone. */
  running(): Entry[]
}

/** The entry file of `owner`'s workspace as it is now, when it still belongs to `owner`. */
function readOwned(dir: string, owner: Entry): { bytes: Buffer; entry: Entry } | 'missing' | 'other' | RegistryError {
  const path = join(dir, `${owner.id}.json`)
  const read = readEntryFile(path)
  if (read.kind === 'missing') return 'missing'
  if (read.kind === 'unreadable') return unreadableError(path, read.problem)
  if (read.kind !== 'ok') return 'other'
  const parsed = parseEntry(read.bytes.toString('utf8'), owner.id)
  if (!parsed.ok || !sameProcess(parsed.entry, owner)) return 'other'
  return { bytes: read.bytes, entry: parsed.entry }
}

/** True while the entry file of `owner`'s workspace may still name that same process (an unreadable file may). */
export function stillOwned(dir: string, owner: Entry): boolean {
  const owned = readOwned(dir, owner)
  return typeof owned !== 'string'
}

/**
 * Delete the entry of `owner`'s workspace only while it still names that same process: a successor's
 * entry, written after ours, is never removed. Synchronous, so it can run in an exit handler.
 */
export function removeOwned(dir: string, owner: Entry, end: [HistoryEvent, string | null] = ['released', null]): boolean {
  const current = readOwned(dir, owner)
  if (typeof current === 'string' || current instanceof RegistryError) return false
  if (compareAndDelete(dir, `${owner.id}.json`, current.bytes) !== 'deleted') return false
  recordEnd(dir, current.entry, ...end)
  return true
}


// A winner writes its entry right after taking the lock; a loser racing that first write waits this long for it.
const ENTRY_PATIENCE_MS = 2000
// The name lock is held only while a claimer checks the name and writes its entry.
const NAME_PATIENCE_MS = 2000
// How often a claim looks whether its entry is still its own (the signal's promise: aborted within 2 s of a loss).
const CHECK_MS = 1000
const MAX_BACKOFF_MS = 250

const monotonicMs = (): number => performance.now()
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function checkOptions(options: ClaimOptions): void {
  if (typeof options !== 'object' || options === null) throw new RegistryError('E_INVALID', 'claim() options must be an object such as { waitMs: 1000 }.')
  checkWait(options.waitMs ?? 0)
  const lease = options.leaseMs
  if (lease !== undefined && !(Number.isFinite(lease) && lease >= 30)) {
    throw new RegistryError('E_INVALID', `Invalid leaseMs ${String(lease)}: pass a number of milliseconds ≥ 30.`)
  }
}

function locked(cwd: string, holder: LockHolder | undefined, entry: Entry | undefined): RegistryError<'E_LOCKED'> {
  const pid = entry?.pid ?? holder?.pid
  const by = pid === undefined ? '' : ` by pid ${pid}${entry?.url ? ` (${entry.url})` : ''}`
  return new RegistryError('E_LOCKED', `Workspace ${cwd} is claimed${by}: stop it, or wait for it with waitMs.`, { cwd, pid, entry, holder })
}

/**
 * The entry of a workspace whose lock `holder` took for a claim: it follows the lock within moments, so wait for it
 * (bounded) rather than answer "held, but by no one" — while the holder's side file still stands.
 */
async function holderEntry(context: ClaimContext, dir: string, id: string, holder: LockHolder | undefined): Promise<Entry | undefined> {
  const deadline = monotonicMs() + (holder?.claim ? ENTRY_PATIENCE_MS : 0)
  const since = holder ? Date.parse(holder.since) : Number.NaN
  for (;;) {
    const entry = context.current(id)
    // Written since the lock was taken (on this host's clock), or by the holder itself: the holder's entry, not a predecessor's.
    if (entry && entry.pid !== 0 && (!holder || entry.pid === holder.pid || !(Date.parse(entry.updatedAt) < since))) return entry
    if (monotonicMs() >= deadline || (holder && !lockHolder(dir, id))) return entry && entry.pid !== 0 ? entry : undefined
    await sleep(5)
  }
}

/** The live workspace other than `cwd` running under `name`, if any. */
function nameHolder(context: ClaimContext, name: string, cwd: string): Entry | undefined {
  return context.running().find((entry) => entry.name === name && entry.cwd !== cwd && entry.pid !== 0)
}

interface Taken {
  held: HeldLock
  entry: Entry
}

/** One attempt: the claim's lock and entry, or the refusal that says who holds the workspace. */
async function attempt(registry: Registry, context: ClaimContext, write: WriteInput, options: ClaimOptions): Promise<Taken | RegistryError> {
  const cwd = canonicalCwd(write.cwd)
  const id = idOfCanonical(cwd)
  // `lock()` then `claim()` in one process: the claim uses the lock already held (README's two-call pattern).
  let held: HeldLock | null = adoptLock(registry.dir, cwd)
  try {
    held ??= await acquireLock(registry.dir, cwd, {}, true)
  } catch (error) {
    if (!(error instanceof RegistryError) || error.code !== 'E_LOCKED') throw error
    const holder = error.details.holder as LockHolder | undefined
    return locked(cwd, holder, await holderEntry(context, registry.dir, id, holder))
  }
  let nameLock: HeldLock | null = null
  try {
    const pid = write.pid ?? process.pid
    const current = context.current(id)
    // An entry naming another running process (written by a claim on behalf of a child, or by write()) is a holder too.
    if (current && current.pid !== 0 && !sameProcess(current, { pid, ...captureIdentity(pid) })) {
      await held.release()
      return locked(cwd, undefined, current)
    }
    if (options.uniqueName) {
      const name = write.name ?? current?.name ?? basenameOf(cwd)
      nameLock = await acquireNameLock(registry.dir, name, NAME_PATIENCE_MS)
      const other = nameHolder(context, name, cwd)
      if (other || !nameLock) {
        await held.release()
        if (!other) return new RegistryError('E_LOCKED', `The name ${JSON.stringify(name)} is being claimed by others without pause; try again.`, { cwd })
        return new RegistryError('E_NAME_TAKEN', `A workspace named ${JSON.stringify(name)} already runs at ${other.cwd} (pid ${other.pid}): stop it, or pick another name.`, {
          name,
          pid: other.pid,
          entry: other,
        })
      }
    }
    const leaseUntil = options.leaseMs === undefined ? undefined : new Date(Date.now() + options.leaseMs).toISOString()
    const entry = context.write(leaseUntil === undefined ? write : { ...write, leaseUntil })
    return { held, entry }
  } catch (error) {
    await held.release()
    throw error
  } finally {
    await nameLock?.release()
  }
}

function basenameOf(cwd: string): string {
  return cwd.slice(cwd.lastIndexOf('/') + 1) || cwd
}

/**
 * Claim a workspace for this process (or `input.pid`): hold its lock for the claim's life, write the entry, remove it
 * on exit (see {@link ClaimInput.cleanupOnExit}). Refuses with `E_LOCKED` (holder's pid and entry) after `waitMs`.
 */
export async function claimWorkspace(registry: Registry, input: ClaimInput, options: ClaimOptions, context: ClaimContext): Promise<Claim> {
  checkOptions(options)
  const { cleanupOnExit, ...write } = input ?? ({} as ClaimInput)
  if (typeof input !== 'object' || input === null) throw new RegistryError('E_INVALID', 'claim() needs an object such as { cwd: "/path/to/workspace" }.')
  const deadline = monotonicMs() + (options.waitMs ?? 0)
  let taken: Taken
  for (let delay = 5; ; delay = Math.min(delay * 2, MAX_BACKOFF_MS)) {
    const outcome = await attempt(registry, context, write, options)
    if (!(outcome instanceof RegistryError)) {
      taken = outcome
      break
    }
    const remaining = deadline - monotonicMs()
    if (remaining <= 0) throw outcome
    // Jitter keeps a crowd of waiters from retrying in lockstep.
    await sleep(Math.min(remaining, delay * (0.5 + Math.random())))
  }
  return holdClaim(registry, context, taken, cleanupOnExit ?? taken.entry.pid === process.pid, options.leaseMs)
}

async function holdClaim(registry: Registry, context: ClaimContext, taken: Taken, cleanupOnExit: boolean, leaseMs: number | undefined): Promise<Claim> {
  let entry = taken.entry
  const controller = new AbortController()
  let stopWatching: (() => void) | undefined
  if (cleanupOnExit) {
    // Loaded on first claim: signal-exit installs nothing until asked, but loading it costs every `wsreg` start.
    const { onExit } = await import('signal-exit')
    // signal-exit re-raises the signal after the callback (when nobody else handles it), so the process still ends as it would have.
    stopWatching = onExit(() => {
      try {
        removeOwned(registry.dir, entry)
      } catch {
        // Exiting anyway: a leftover entry is pruned by the next list once the process is gone.
      }
    })
  }
  let released = false
  const lose = (why: string, current?: Entry): void => {
    if (controller.signal.aborted) return
    // The lock goes with the loss: holding it would refuse claimers on behalf of an owner that is not us.
    void taken.held.release()
    controller.abort(new RegistryError('E_LOCKED', `The claim of ${entry.cwd} was lost: ${why}.`, { cwd: entry.cwd, lost: true, pid: current?.pid, entry: current }))
  }
  const otherOwner = (): Entry | undefined => {
    const current = context.current(entry.id)
    return current && !sameProcess(current, entry) ? current : undefined
  }
  const rewrite = (patch: ClaimPatch): Entry => {
    const owned = readOwned(registry.dir, entry)
    // Not being able to read the file says nothing about who owns it now.
    if (owned instanceof RegistryError) throw owned
    if (owned === 'other') {
      const current = otherOwner()
      lose('another process replaced its entry', current)
      throw new RegistryError('E_LOCKED', `Workspace ${entry.cwd} has been claimed by another process since; this claim no longer owns it.`, {
        cwd: entry.cwd,
        lost: true,
        pid: current?.pid,
        entry: current,
      })
    }
    const leaseUntil = leaseMs === undefined ? undefined : new Date(Date.now() + leaseMs).toISOString()
    // Compare-and-swap: replaced only while the file still holds exactly what we read as ours, so a new owner
    // landing between our check and our write is never overwritten (E_LOCKED instead). Missing: recreated.
    entry = context.write({
      cwd: entry.cwd,
      pid: entry.pid,
      name: patch.name ?? entry.name,
      ...optional('url', 'url' in patch ? patch.url : entry.url),
      ...optional('meta', 'meta' in patch ? patch.meta : entry.meta),
      ...optional('leaseUntil', leaseUntil),
    }, owned === 'missing' ? Buffer.alloc(0) : owned.bytes)
    return entry
  }
  // One unref'd timer: renews the lease at a third of it, and checks every second that the entry is still ours.
  const period = leaseMs === undefined ? CHECK_MS : Math.min(CHECK_MS, leaseMs / 3)
  const renewEvery = leaseMs === undefined ? Number.POSITIVE_INFINITY : leaseMs / 3
  let renewedAt = monotonicMs()
  const timer = setInterval(() => {
    if (released || controller.signal.aborted) return
    try {
      if (leaseMs !== undefined && monotonicMs() - renewedAt >= renewEvery - period / 2) {
        rewrite({})
        renewedAt = monotonicMs()
      } else if (readOwned(registry.dir, entry) === 'other') {
        lose('another process replaced its entry', otherOwner())
      }
    } catch (error) {
      if (controller.signal.aborted) return
      // A failed renewal (a full disk, EIO) is retried next tick; the claim is lost only once the lease has lapsed.
      if (entry.leaseUntil !== undefined && Date.now() > Date.parse(entry.leaseUntil)) lose(`its lease could not be renewed (${(error as Error).message})`)
    }
  }, period)
  timer.unref()
  const release = async (): Promise<boolean> => {
    if (released) return false
    released = true
    clearInterval(timer)
    stopWatching?.()
    try {
      return removeOwned(registry.dir, entry)
    } finally {
      await taken.held.release()
    }
  }
  return {
    get entry() {
      return entry
    },
    signal: controller.signal,
    async update(patch) {
      if (released) throw new RegistryError('E_INVALID', `The claim on ${entry.cwd} was released: claim it again before updating.`)
      const updated = rewrite(patch ?? {})
      if (leaseMs !== undefined) renewedAt = monotonicMs()
      return updated
    },
    release,
    async [Symbol.asyncDispose]() {
      await release()
    },
  }
}

/** `{ [key]: value }`, or nothing when value is undefined (so a removed field stays removed). */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: V })
}
