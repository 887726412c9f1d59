import { randomBytes } from 'node:crypto'
import {
  closeSync, constants, fstatSync, type Stats, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readSync, renameSync, unlinkSync, writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { MAX_ENTRY_BYTES } from './entry.js'
import { RegistryError, isErrno } from './errors.js'
import { QUARANTINE_DIR } from './paths.js'

/** One entry file as read from disk. */
export type FileRead =
  | { kind: 'ok'; bytes: Buffer; mtimeMs: number }
  | { kind: 'missing' }
  | { kind: 'corrupt'; problem: string; mtimeMs: number | null }

// O_NOFOLLOW: a symlinked entry is corrupt, never followed. O_NONBLOCK: a planted FIFO cannot hang a reader.
const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0)
// O_NOATIME (Linux): reading an entry right after it was written would otherwise dirty its inode, and the next
// write's fsync pays for journaling that. Only a file's owner may ask for it: after one EPERM we stop asking.
let noAtime = constants.O_NOATIME ?? 0
const shared = Buffer.allocUnsafe(64 * 1024)
// Compare-and-delete reads into its own buffer: the bytes it compares against may be a view of `shared`.
const compared = Buffer.allocUnsafe(64 * 1024)

/** Read one entry file without following links, refusing non-regular and oversized files. */
export function readEntryFile(path: string): FileRead {
  const read = readEntryView(path)
  return read.kind === 'ok' ? { kind: 'ok', bytes: Buffer.from(read.bytes), mtimeMs: read.mtimeMs } : read
}

/**
 * {@link readEntryFile} without the copy: `bytes` is a view of a buffer the next read reuses, so a caller
 * copies what it keeps. Lists read thousands of files and keep none of their bytes.
 */
export function readEntryView(path: string): FileRead {
  let fd: number
  try {
    fd = openEntry(path)
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return { kind: 'missing' }
    if (isErrno(error, 'ELOOP', 'EMLINK')) return { kind: 'corrupt', problem: 'is a symlink', mtimeMs: lstatMtime(path) }
    return { kind: 'corrupt', problem: `cannot be opened (${(error as NodeJS.ErrnoException).code})`, mtimeMs: lstatMtime(path) }
  }
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile()) return { kind: 'corrupt', problem: 'is not a regular file', mtimeMs: stat.mtimeMs }
    if (stat.size > MAX_ENTRY_BYTES) return { kind: 'corrupt', problem: `is larger than ${MAX_ENTRY_BYTES} bytes`, mtimeMs: stat.mtimeMs }
    const target = stat.size < shared.length ? shared : Buffer.allocUnsafe(MAX_ENTRY_BYTES + 1)
    let length = 0
    for (;;) {
      const n = readSync(fd, target, length, target.length - length, null)
      if (n === 0) break
      length += n
      if (length > MAX_ENTRY_BYTES) return { kind: 'corrupt', problem: `is larger than ${MAX_ENTRY_BYTES} bytes`, mtimeMs: stat.mtimeMs }
      // A regular file's read comes back short only at its end, so once fstat's size is in, a second read would only say EOF.
      if (length >= stat.size || length === target.length) break
    }
    return { kind: 'ok', bytes: target.subarray(0, length), mtimeMs: stat.mtimeMs }
  } catch (error) {
    return { kind: 'corrupt', problem: `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, mtimeMs: null }
  } finally {
    closeSync(fd)
  }
}

function openEntry(path: string): number {
  if (noAtime === 0) return openSync(path, READ_FLAGS)
  try {
    return openSync(path, READ_FLAGS | noAtime)
  } catch (error) {
    if (!isErrno(error, 'EPERM')) throw error
    noAtime = 0
    return openSync(path, READ_FLAGS)
  }
}

function lstatMtime(path: string): number | null {
  try {
    return lstatSync(path).mtimeMs
  } catch {
    return null
  }
}

let counter = 0
let token: string | undefined
/** A private name next to `name` that the registry ignores: `<name>.<suffix>`. */
function tempName(name: string, purpose = 'tmp'): string {
  counter = (counter + 1) % 0x7fffffff
  // pid + counter tell this process's names apart; a random token drawn once per process tells them from a
  // crashed predecessor's debris with the same pid (drawing it per name cost ~17 µs of every write).
  token ??= randomBytes(4).toString('hex')
  return `${name}.${purpose}-${process.pid}-${counter}-${token}`
}

const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL
// What `link` says on a filesystem without hard links (vfat, some FUSE and SMB mounts).
const NO_HARD_LINKS = ['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']

/** Write all of `bytes`: a write may come back short (a nearly full disk), so the rest follows until done or an error. */
function writeWhole(fd: number, bytes: Buffer): void {
  for (let done = 0; done < bytes.length; ) {
    const n = writeSync(fd, bytes, done, bytes.length - done)
    if (n === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' })
    done += n
  }
}

/** A full disk or quota becomes `E_NO_SPACE`, naming the folder; every other error passes through. */
function spaceError(error: unknown, dir: string): unknown {
  if (!isErrno(error, 'ENOSPC', 'EDQUOT')) return error
  const what = error.code === 'EDQUOT' ? 'your disk quota is used up' : 'its disk is full'
  return new RegistryError('E_NO_SPACE', `Cannot write in registry folder ${dir}: ${what}. Free some space there and try again; nothing was written.`, { dir }, { cause: error })
}

function writeTemp(dir: string, name: string, bytes: Buffer): string {
  const temp = join(dir, tempName(name))
  const fd = openSync(temp, CREATE_FLAGS, 0o600)
  try {
    try {
      writeWhole(fd, bytes)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  } catch (error) {
    unlinkQuiet(temp)
    throw error
  }
  return temp
}

/**
 * Replace `dir/name` atomically: temp file in the same folder, written whole, fsync, rename. Readers never see a
 * torn file; a full disk throws `E_NO_SPACE` and leaves the previous version in place.
 */
export function writeAtomic(dir: string, name: string, data: string): void {
  try {
    const temp = writeTemp(dir, name, Buffer.from(data))
    try {
      renameSync(temp, join(dir, name))
    } catch (error) {
      unlinkQuiet(temp)
      throw error
    }
  } catch (error) {
    throw spaceError(error, dir)
  }
}

/**
 * Create `dir/name` only if nothing is there, or, with `replacing`, only while it still holds exactly those bytes;
 * false when something else was there. The new file is written whole before anything in place is touched, so a
 * full disk throws `E_NO_SPACE` and leaves the previous version.
 */
export function createExclusive(dir: string, name: string, data: string, replacing?: Buffer): boolean {
  const bytes = Buffer.from(data)
  try {
    const temp = writeTemp(dir, name, bytes)
    try {
      if (replacing && compareAndDelete(dir, name, replacing) === 'changed') return false
      linkSync(temp, join(dir, name))
      return true
    } catch (error) {
      if (isErrno(error, 'EEXIST')) return false
      if (!isErrno(error, ...NO_HARD_LINKS)) throw error
    } finally {
      unlinkQuiet(temp)
    }
    return createInPlace(join(dir, name), bytes)
  } catch (error) {
    throw spaceError(error, dir)
  }
}

/**
 * Without hard links the name itself is created exclusively and filled in place: it never replaces a file, and a
 * reader looking mid-write sees a short file, a race it already expects. A failed fill removes only our own file.
 */
function createInPlace(path: string, bytes: Buffer): boolean {
  let fd: number
  try {
    fd = openSync(path, CREATE_FLAGS, 0o600)
  } catch (error) {
    if (isErrno(error, 'EEXIST')) return false
    throw error
  }
  let mine: Stats | undefined
  try {
    try {
      mine = fstatSync(fd)
      writeWhole(fd, bytes)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  } catch (error) {
    const now = lstatSync(path, { throwIfNoEntry: false })
    if (mine && now && now.ino === mine.ino && now.dev === mine.dev) unlinkQuiet(path)
    throw error
  }
  return true
}

/** What a compare-and-delete did. */
export type DeleteOutcome = 'deleted' | 'changed' | 'missing' | 'read-only'

/**
 * Delete `dir/name` only if it still holds exactly `judged`. POSIX has no conditional unlink, so
 * the file is renamed aside, compared, and linked back when a newer version was taken by mistake;
 * `link` fails if a still newer write landed meanwhile, and then that write stands.
 */
export function compareAndDelete(dir: string, name: string, judged: Buffer): DeleteOutcome {
  const path = join(dir, name)
  const aside = join(dir, tempName(name, 'cad'))
  try {
    renameSync(path, aside)
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return 'missing'
    if (isErrno(error, 'EACCES', 'EPERM', 'EROFS')) return 'read-only'
    throw error
  }
  if (holds(aside, judged)) {
    unlinkQuiet(aside)
    return 'deleted'
  }
  try {
    linkSync(aside, path)
  } catch (error) {
    if (!isErrno(error, 'EEXIST')) {
      // Could not put it back: leave it under the aside name rather than lose it; try a plain rename.
      try {
        renameSync(aside, path)
      } catch {
        return 'changed'
      }
      return 'changed'
    }
  }
  unlinkQuiet(aside)
  return 'changed'
}

/** True when the file at `path` (not followed if a link) holds exactly `bytes`: one open, one read, one close. */
function holds(path: string, bytes: Buffer): boolean {
  let fd: number
  try {
    fd = openSync(path, READ_FLAGS)
  } catch {
    return false
  }
  try {
    const target = bytes.length < compared.length ? compared : Buffer.allocUnsafe(bytes.length + 1)
    // Ask for one byte more than judged: a longer file reads longer; a regular file reads short only at its end.
    const n = readSync(fd, target, 0, bytes.length + 1, 0)
    return n === bytes.length && target.subarray(0, n).equals(bytes)
  } catch {
    return false // a directory, a FIFO or an unreadable file is not the judged version
  } finally {
    closeSync(fd)
  }
}

/** Unlink, ignoring a file that is already gone; other failures (read-only folder) return false. */
export function unlinkQuiet(path: string): boolean {
  try {
    unlinkSync(path)
    return true
  } catch {
    return false
  }
}

/** Move a corrupt file into `.quarantine/` (never deleted); returns the new path or null when it could not. */
export function quarantine(dir: string, name: string): string | null {
  const folder = join(dir, QUARANTINE_DIR)
  try {
    mkdirSync(folder, { mode: 0o700 })
  } catch (error) {
    if (!isErrno(error, 'EEXIST')) return null
  }
  // Never move files through a symlinked quarantine folder: it could point anywhere.
  const stat = lstatSync(folder, { throwIfNoEntry: false })
  if (!stat || !stat.isDirectory() || stat.isSymbolicLink()) return null
  const target = join(folder, `${name}.${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`)
  try {
    renameSync(join(dir, name), target)
    return target
  } catch {
    return null
  }
}

/** Remove a writer's temp file once it is older than `maxAgeMs` (a crashed writer's debris). */
export function sweepTemp(dir: string, name: string, now: number, maxAgeMs: number, dryRun: boolean): boolean {
  const path = join(dir, name)
  const stat = lstatSync(path, { throwIfNoEntry: false })
  if (!stat || now - stat.mtimeMs < maxAgeMs || stat.isDirectory()) return false
  return dryRun || unlinkQuiet(path)
}

/** A problem with the registry folder itself. */
export function dirProblem(dir: string): string | null {
  const stat = lstatSync(dir, { throwIfNoEntry: false })
  return stat ? problemOf(dir, stat) : null
}

function problemOf(dir: string, stat: Stats): string | null {
  if (stat.isSymbolicLink()) return `is a symlink: point the registry at the real folder (${dir} → its target) instead`
  if (!stat.isDirectory()) return 'is not a folder: remove it or choose another registry folder'
  if (process.platform === 'win32') return null
  const uid = process.getuid?.()
  if (uid !== undefined && stat.uid !== uid && stat.uid !== 0) {
    return `is owned by uid ${stat.uid}, not by you (uid ${uid}) or root: use a folder of your own`
  }
  if ((stat.mode & 0o022) !== 0) {
    return `is writable by group or others (mode ${(stat.mode & 0o777).toString(8)}): run chmod 700 ${JSON.stringify(dir)}`
  }
  return null
}

/** Refuse a folder someone else could feed entries through (E_UNSAFE_DIR); false when it does not exist. */
export function checkDir(dir: string): boolean {
  const stat = lstatSync(dir, { throwIfNoEntry: false })
  if (!stat) return false
  const problem = problemOf(dir, stat)
  if (problem) throw new RegistryError('E_UNSAFE_DIR', `Registry folder ${dir} ${problem}.`, { dir })
  return true
}

/** Create the registry folder (mode 0700) when missing, then check it is safe. */
export function ensureDir(dir: string): void {
  if (checkDir(dir)) return
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
  } catch (error) {
    throw spaceError(error, dir)
  }
  checkDir(dir)
}
