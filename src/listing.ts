import { lstatSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { isErrno } from './errors.js'
import { ENTRY_NAME } from './paths.js'

/**
 * The entry files of a registry folder as last seen, each with its identity (inode, size, mtime, ctime), so a
 * look finds every rewrite without reading a file, whether or not a file event told of it. It holds only files
 * present at the last look: memory follows the live entries, not every workspace ever seen.
 */
export class Listing {
  #files = new Map<string, string>()
  /** Legacy file names by id; only ids that have some. */
  #legacy = new Map<string, Set<string>>()
  #doubted = false
  /** Where the round of {@link Listing.recheck} stands in the remembered files. */
  #cursor: Iterator<[string, string]> | undefined

  /** How many files and legacy ids are remembered. */
  get size(): { files: number; legacy: number } {
    return { files: this.#files.size, legacy: this.#legacy.size }
  }

  /** The files that may speak for a workspace: its entry file, then its legacy files. */
  filesOf(id: string): string[] {
    return [`${id}.json`, ...(this.#legacy.get(id) ?? [])]
  }

  /** A file event named a legacy file of `id`. */
  addLegacy(id: string, file: string): void {
    const files = this.#legacy.get(id)
    if (files) files.add(file)
    else this.#legacy.set(id, new Set([file]))
  }

  /** Remember the identity of a file just read, or forget a file found gone (undefined). */
  note(id: string, file: string, identity: string | undefined): void {
    if (identity !== undefined) {
      this.#files.set(file, identity)
      return
    }
    this.#files.delete(file)
    const legacy = this.#legacy.get(id)
    if (legacy?.delete(file) && legacy.size === 0) this.#legacy.delete(id)
  }

  /** Forget a file's identity only (it could not be read): the next look reads it again. */
  doubt(file: string): void {
    this.#files.delete(file)
    this.#doubted = true
  }

  /** Whether a file could not be read since the last look began: the next look must not be skipped. */
  get doubted(): boolean {
    return this.#doubted
  }

  /** Forget every identity (another folder took this one's place). */
  clear(): void {
    this.#files.clear()
    this.#cursor = undefined
  }

  /**
   * Compare the identity of the next `count` remembered files (a round over all of them, continued at each call)
   * with their files now, without listing the folder: the ids whose file was rewritten in place or vanished. A
   * rename over an entry changes the folder, so this is the check for what the folder's stat cannot show.
   */
  recheck(dir: string, count: number): string[] {
    const changed: string[] = []
    this.#cursor ??= this.#files.entries()
    for (let left = count; left > 0; left--) {
      const next = this.#cursor.next()
      if (next.done) {
        this.#cursor = undefined // the round is done: the next call starts another
        break
      }
      const [name, identity] = next.value
      // Every remembered name is an entry name, which starts with its id.
      if (fileIdentity(join(dir, name)) !== identity) changed.push(name.slice(0, 16))
    }
    return changed
  }

  /**
   * Look at every entry file in `dir` (none when `dir` is undefined) and return the ids whose files appeared,
   * vanished or changed identity, plus those of `tracked` with no file left. Yields every `slice` files so a
   * caller can pause there.
   */
  *look(dir: string | undefined, tracked: Iterable<string>, slice: number): Generator<void, Set<string>> {
    this.#doubted = false
    let names: string[] = []
    if (dir !== undefined) {
      try {
        names = readdirSync(dir)
      } catch (error) {
        if (!isErrno(error, 'ENOENT', 'ENOTDIR')) throw error
      }
    }
    const files = new Map<string, string>()
    const legacy = new Map<string, Set<string>>()
    const changed = new Set<string>()
    const see = (name: string): void => {
      const match = ENTRY_NAME.exec(name)
      if (!match || files.has(name)) return
      const id = match[1] as string
      const identity = dir === undefined ? undefined : fileIdentity(join(dir, name))
      if (identity !== this.#files.get(name)) changed.add(id)
      if (identity === undefined) return
      files.set(name, identity)
      if (match[2] !== undefined) (legacy.get(id) ?? legacy.set(id, new Set()).get(id))?.add(name)
    }
    let seen = 0
    for (const name of names) {
      see(name)
      if (++seen % slice === 0) yield
    }
    // Files known but not listed vanished, or were created after the listing (while the caller paused): look again.
    for (const name of this.#files.keys()) see(name)
    for (const id of tracked) if (!files.has(`${id}.json`) && !legacy.has(id)) changed.add(id)
    this.#files = files
    this.#legacy = legacy
    this.#cursor = undefined
    return changed
  }
}

/** What identifies one version of a file without reading it (a rewrite is a rename: a new inode), or undefined when it is gone. */
export function fileIdentity(path: string): string | undefined {
  try {
    // Plain numbers (no BigInt per field): mtime and ctime in ms keep sub-microsecond digits, beyond the kernel's tick.
    const stat = lstatSync(path, { throwIfNoEntry: false })
    return stat && `${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`
  } catch (error) {
    if (isErrno(error, 'ENOTDIR')) return undefined
    throw error
  }
}
