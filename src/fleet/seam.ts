import { join } from 'node:path'
import { parseEntry, serializeEntry, type Entry } from '../entry.js'
import { hostName } from '../identity.js'
import type { Registry } from '../registry.js'
import { compareAndDelete, ensureDir, readEntryFile, writeAtomic } from '../store.js'
import type { RegistryEvent } from '../transition.js'

/** One entry as a store holds it, with the version a compare-and-delete must name. */
export interface StoredEntry {
  /** The entry, validated like a file. */
  entry: Entry
  /** The machine the entry is published for (the file tree: this machine). */
  host: string
  /** Where the entry lives: a file path or an etcd key. */
  location: string
  /** Opaque version token: the file's bytes, or the etcd key's mod revision. */
  version: string
}

/** What a compare-and-delete found. */
export type DeleteOutcome = 'deleted' | 'changed' | 'missing'

/** Something that emits registry events and can be iterated; both watchers satisfy it. */
export interface EventSource extends AsyncIterable<RegistryEvent> {
  /** Stop watching and end the iteration. */
  close(): Promise<void>
}

/**
 * The registry's storage behind five operations. The file tree (one machine) and etcd (a fleet)
 * both satisfy it; `read`, `write` and `compareAndDelete` act on this host's entries, `list` and
 * `watch` see everything the store holds.
 */
export interface EntryStore {
  /** Where the store is: a folder or an `etcd://` URL. */
  readonly location: string
  /** The name this machine's entries are kept under. */
  readonly host: string
  /** The current version of workspace `id` of this host, or undefined. */
  read(id: string): Promise<StoredEntry | undefined>
  /** Store `entry` (last writer wins); returns what was stored. */
  write(entry: Entry): Promise<StoredEntry>
  /** Delete workspace `id` of this host only while it still has `version`: a newer write always stands. */
  compareAndDelete(id: string, version: string): Promise<DeleteOutcome>
  /** Every entry the store holds (no judging, no pruning). */
  list(): Promise<StoredEntry[]>
  /** Events for workspaces going up, down and changing. */
  watch(options?: { intervalMs?: number }): EventSource
}

/**
 * The file tree as an {@link EntryStore}: a thin adapter over the registry's own folder and its
 * atomic file operations, so the embedded store keeps exactly its behaviour and costs nothing extra.
 */
export function fileTreeStore(registry: Registry): EntryStore {
  const host = hostName()
  const stored = (id: string): StoredEntry | undefined => {
    const path = join(registry.dir, `${id}.json`)
    const read = readEntryFile(path)
    if (read.kind !== 'ok') return undefined
    const text = read.bytes.toString('utf8')
    const parsed = parseEntry(text, id)
    return parsed.ok ? { entry: parsed.entry, host, location: path, version: text } : undefined
  }
  return {
    location: registry.dir,
    host,
    read: async (id) => stored(id),
    async write(entry) {
      // Registry.write composes identity for this process; a store write keeps the entry as given.
      ensureDir(registry.dir)
      writeAtomic(registry.dir, `${entry.id}.json`, serializeEntry(entry))
      return stored(entry.id) as StoredEntry
    },
    async compareAndDelete(id, version) {
      const outcome = compareAndDelete(registry.dir, `${id}.json`, Buffer.from(version))
      return outcome === 'deleted' ? 'deleted' : outcome === 'missing' ? 'missing' : 'changed'
    },
    async list() {
      const entries = await registry.list({ prune: false })
      return entries.map((entry) => stored(entry.id)).filter((row): row is StoredEntry => row !== undefined)
    },
    watch: (options) => registry.watch(options),
  }
}
