import { existsSync } from 'node:fs'
import type { Entry, EntryRow, Registry } from '../index.js'
import { ID_PATTERN, workspaceId } from '../paths.js'
import { UsageError } from './command.js'
import { inline } from './output.js'

/** What a `<ref>` can match: anything with an id, a name and a cwd (an entry, a history record). */
export interface Named {
  id: string
  name: string | null
  cwd: string | null
}

/** Where refs are looked up: one workspace by id, or every one (for names). */
export interface RefSource<T extends Named> {
  byId(id: string): Promise<T | undefined>
  all(): Promise<T[]>
}

/** A name that matches several workspaces: exit 2, listing them so the user can pick an id or a path. */
export class AmbiguousRef extends UsageError {
  /** Each match as `{ id, name, cwd }` (what `--json` prints under `error.matches`). */
  readonly matches: Named[]

  constructor(
    readonly ref: string,
    matches: Named[],
  ) {
    // Names and cwds are entry data: escaped inline, so a planted newline cannot forge another match line.
    const lines = matches.map((match) => `  ${match.id}  ${inline(match.name ?? '-')}  ${inline(match.cwd ?? '-')}`)
    super(`${JSON.stringify(ref)} names ${matches.length} workspaces; pass an id or a path instead:\n${lines.join('\n')}`)
    this.matches = matches.map(({ id, name, cwd }) => ({ id, name, cwd }))
  }
}

/** True when `ref` reads as a path: it has a separator, is `.`/`..`, or exists. */
export function looksLikePath(ref: string): boolean {
  return ref.includes('/') || ref.includes('\\') || ref === '.' || ref === '..' || existsSync(ref)
}

/**
 * The one meaning of a `<ref>` (DESIGN.md §5): an id, an existing path, or a name matching exactly one workspace,
 * tried in that order. Undefined when nothing matches (exit 4); {@link AmbiguousRef} when a name matches several.
 */
export async function resolveRef<T extends Named>(ref: string, source: RefSource<T>): Promise<T | undefined> {
  if (ref === '') throw new UsageError('Name a workspace: an id, a folder, or a name from `wsreg ls`.')
  if (ref.includes('\0')) throw new UsageError('A workspace argument cannot contain NUL bytes.')
  if (ID_PATTERN.test(ref)) {
    const found = await source.byId(ref)
    if (found) return found
  }
  if (looksLikePath(ref)) {
    const found = await source.byId(workspaceId(ref))
    if (found) return found
  }
  const matches = new Map<string, T>()
  for (const candidate of await source.all()) if (candidate.name === ref && !matches.has(candidate.id)) matches.set(candidate.id, candidate)
  if (matches.size > 1) throw new AmbiguousRef(ref, [...matches.values()])
  return matches.values().next().value
}

/** Live workspaces: by id through `readId`, names from `list()` (both prune what they find dead, like `ls`). */
export function liveEntries(registry: Registry): RefSource<Entry> {
  return { byId: (id) => registry.readId(id), all: () => registry.list() }
}

/** Every recorded entry, dead ones too and nothing pruned (for `rm`, which must find a dead entry to remove it). */
export function recordedEntries(registry: Registry): RefSource<Entry> {
  let rows: Promise<Entry[]> | undefined
  const all = (): Promise<Entry[]> => {
    rows ??= registry.listInfo({ all: true, prune: false }).then((infos) => infos.filter((row): row is EntryRow => row.status !== 'corrupt'))
    return rows
  }
  return { byId: async (id) => (await all()).find((entry) => entry.id === id), all }
}
