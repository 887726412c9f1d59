import { join } from 'node:path'
import { parseEntry, sameProcess, type Entry } from './entry.js'
import { RegistryError } from './errors.js'
import { recordEnd, type HistoryEvent } from './history.js'
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

/** What {@link Claim.update} may change. */
export interface ClaimPatch {
  /** New human label. */
  name?: string
  /** New service endpoint (`undefined` removes it). */
  url?: string
  /** New app-defined data (replaces the old). */
  meta?: Record<string, unknown>
}

/** A workspace entry this process owns until it exits or calls {@link Claim.release}. */
export interface Claim {
  /** The entry as last written. */
  readonly entry: Entry
  /** Rewrite the entry with `patch`; throws `E_LOCKED` when another process has claimed the workspace since. */
  update(patch: ClaimPatch): Promise<Entry>
  /** Remove the entry if it is still ours, and stop watching for exit; true when something was removed. */
  release(): Promise<boolean>
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

/** Write `input` as this process's claim on a workspace, and remove it again on exit (see {@link ClaimInput.cleanupOnExit}). */
export async function claimWorkspace(
  registry: Registry,
  input: ClaimInput,
  rewrite: (input: WriteInput, replacing: Buffer) => Entry,
): Promise<Claim> {
  const { cleanupOnExit, ...write } = input ?? ({} as ClaimInput)
  let entry = await registry.write(write)
  let stopWatching: (() => void) | undefined
  if (cleanupOnExit ?? entry.pid === process.pid) {
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
  return {
    get entry() {
      return entry
    },
    async update(patch) {
      if (released) throw new RegistryError('E_INVALID', `The claim on ${entry.cwd} was released: claim it again before updating.`)
      const owned = readOwned(registry.dir, entry)
      // Not being able to read the file says nothing about who owns it now.
      if (owned instanceof RegistryError) throw owned
      if (owned === 'other') {
        throw new RegistryError('E_LOCKED', `Workspace ${entry.cwd} has been claimed by another process since; this claim no longer owns it.`, {
          cwd: entry.cwd,
        })
      }
      // Compare-and-swap: replaced only while the file still holds exactly what we read as ours, so a new owner
      // landing between our check and our write is never overwritten (E_LOCKED instead). Missing: recreated.
      entry = rewrite({
        cwd: entry.cwd,
        pid: entry.pid,
        name: patch.name ?? entry.name,
        url: 'url' in patch ? patch.url : entry.url,
        meta: 'meta' in patch ? patch.meta : entry.meta,
      }, owned === 'missing' ? Buffer.alloc(0) : owned.bytes)
      return entry
    },
    async release() {
      if (released) return false
      released = true
      stopWatching?.()
      return removeOwned(registry.dir, entry)
    },
  }
}
