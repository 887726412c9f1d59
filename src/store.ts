import { randomBytes } from 'node:crypto'
import {
  closeSync, constants, fstatSync, type Stats, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, unlinkSync, writeSync,
} from 'node:fs'
import { join, sep } from 'node:path'
import { MAX_ENTRY_BYTES } from './entry.js'
import { RegistryError, isErrno } from './errors.js'
import { inspectProcess } from './identity.js'
import { QUARANTINE_DIR } from './paths.js'

/** What a file was judged to be, to compare against later: its bytes, or for a file judged by its type or size, its stamp. */
export type Judged = Buffer | FileStamp

/** Identity of a file judged without its bytes (a symlink, a FIFO, an oversized file): inode, size, mtime. */
export interface FileStamp {
  ino: number
  size: number
  mtimeMs: number
}

/**
 * One entry file as read from disk. `corrupt` is a verdict on the file's own bytes or type; `unreadable`
 * (EMFILE, EACCES, EIO, …) says nothing about the file and must never lead to moving or deleting it.
 */
export type FileRead =
  | { kind: 'ok'; bytes: Buffer; mtimeMs: number }
  | { kind: 'missing' }
  | { kind: 'corrupt'; problem: string; mtimeMs: number | null; judged: FileStamp }
  | { kind: 'unreadable'; problem: string; mtimeMs: number | null }

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

const stampOf = (stat: Stats): FileStamp => ({ ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs })
const codeOf = (error: unknown) => (error as NodeJS.ErrnoException).code ?? (error as Error).message

/**
 * {@link readEntryFile} without the copy: `bytes` is a view of a buffer the next read reuses, so a caller
 * copies what it keeps. Lists read thousands of files and keep none of their bytes.
 */
export function readEntryView(path: string): FileRead {
  return withEntryFile(path, readOpened)
}

/** Open entry file `path` and hand its descriptor to `read`, closing it after; a missing or unopenable file is reported as such. */
function withEntryFile<R>(path: string, read: (fd: number) => R): R | FileRead {
  let fd: number
  try {
    fd = openEntry(path)
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return { kind: 'missing' }
    return openFailure(path, error)
  }
  try {
    return read(fd)
  } finally {
    closeSync(fd)
  }
}

/** A {@link FileRead} whose bytes may come without their file's mtime (null): what {@link readEntryQuick} returns. */
export type QuickRead = FileRead | { kind: 'ok'; bytes: Buffer; mtimeMs: null }

/**
 * {@link readEntryView} for lists: open, one `read` into a fixed buffer, close — no `fstat`, whose only other uses
 * are the mtime (null here: a caller that needs it reads with {@link readEntryView}) and refusing non-regular and
 * oversized files. Those are refused by other means: the open follows no link and never blocks; a read that fills
 * the buffer, fails (a folder: EISDIR; a FIFO: EAGAIN) or finds nothing (an empty file, a FIFO without a writer)
 * hands the same descriptor to readEntryView's checks, so such files get exactly its verdicts. A FIFO with a
 * writer would read like a file: the folder listing's file type keeps those away (see `Folder.scan`).
 */
export function readEntryQuick(path: string): QuickRead {
  return withEntryFile(path, readQuickOpened)
}

function readQuickOpened(fd: number): QuickRead {
  let n = 0
  try {
    n = readSync(fd, shared, 0, shared.length, null)
  } catch {
    n = 0
  }
  // A regular file's read comes back short only at its end: fewer bytes than the buffer holds is the whole file.
  if (n > 0 && n < shared.length) return { kind: 'ok', bytes: shared.subarray(0, n), mtimeMs: null }
  return readOpened(fd)
}

/** The checks and read of an open entry file: type and size by `fstat`, then its bytes from offset 0. */
function readOpened(fd: number): FileRead {
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile()) return { kind: 'corrupt', problem: 'is not a regular file', mtimeMs: stat.mtimeMs, judged: stampOf(stat) }
    if (stat.size > MAX_ENTRY_BYTES) return { kind: 'corrupt', problem: `is larger than ${MAX_ENTRY_BYTES} bytes`, mtimeMs: stat.mtimeMs, judged: stampOf(stat) }
    const target = stat.size < shared.length ? shared : Buffer.allocUnsafe(MAX_ENTRY_BYTES + 1)
    let length = 0
    for (;;) {
      // Positioned reads: a caller may already have read part of the file through this descriptor.
      const n = readSync(fd, target, length, target.length - length, length)
      if (n === 0) break
      length += n
      if (length > MAX_ENTRY_BYTES) return { kind: 'corrupt', problem: `is larger than ${MAX_ENTRY_BYTES} bytes`, mtimeMs: stat.mtimeMs, judged: stampOf(stat) }
      // A regular file's read comes back short only at its end, so once fstat's size is in, a second read would only say EOF.
      if (length >= stat.size || length === target.length) break
    }
    return { kind: 'ok', bytes: target.subarray(0, length), mtimeMs: stat.mtimeMs }
  } catch (error) {
    return { kind: 'unreadable', problem: `cannot be read (${codeOf(error)})`, mtimeMs: null }
  }
}

/**
 * A failed open is evidence only when the file's type caused it (a symlink under O_NOFOLLOW, a socket): lstat,
 * which needs no descriptor, tells. Anything else (EMFILE, ENFILE, EACCES, EIO, ENOMEM) is about the reader.
 */
function openFailure(path: string, error: unknown): FileRead {
  let stat: Stats | undefined
  try {
    stat = lstatSync(path, { throwIfNoEntry: false })
  } catch {
    stat = undefined
  }
  if (stat === undefined && isErrno(error, 'ELOOP', 'EMLINK')) return { kind: 'missing' }
  if (stat?.isSymbolicLink()) return { kind: 'corrupt', problem: 'is a symlink', mtimeMs: stat.mtimeMs, judged: stampOf(stat) }
  if (stat && !stat.isFile()) return { kind: 'corrupt', problem: 'is not a regular file', mtimeMs: stat.mtimeMs, judged: stampOf(stat) }
  return { kind: 'unreadable', problem: `cannot be opened (${codeOf(error)})`, mtimeMs: stat?.mtimeMs ?? null }
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

/** The error for an entry file that exists but could not be read: nothing was changed, and the fix depends on why. */
export function unreadableError(path: string, problem: string): RegistryError {
  const fix = /EMFILE|ENFILE/.test(problem)
    ? 'too many open files: raise the limit (ulimit -n) or close files, then retry'
    : /EACCES|EPERM/.test(problem)
      ? 'check that you own it and its mode is 600'
      : 'check the disk and retry'
  return new RegistryError('E_UNREADABLE', `Entry file ${path} ${problem}; nothing was changed: ${fix}.`, { path })
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
  try {
    const temp = writeTemp(dir, name, Buffer.from(data))
    try {
      if (replacing && compareAndDelete(dir, name, replacing) === 'changed') return false
      return placeExclusive(temp, join(dir, name))
    } finally {
      unlinkQuiet(temp)
    }
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

// The deleter's start identity goes into every aside name: a dead deleter's pid, once reused, must not make its
// leftover look in progress (and so hide an entry) for as long as the new process runs.
let selfTicks: string | null = null
function asideName(name: string): string {
  selfTicks ??= inspectProcess(process.pid).startTime
  counter = (counter + 1) % 0x7fffffff
  token ??= randomBytes(4).toString('hex')
  return `${name}.cad-${process.pid}-t${selfTicks ?? 'x'}-${counter}-${token}`
}

// Asides written before start identities were recorded lack the `t<ticks>-` part.
const ASIDE_NAME = /^([0-9a-f]{16}(?:-[0-9]+)?\.json)\.cad-([0-9]+)-(?:t([0-9]+|x)-)?/

/** Who took a file aside (pid and start ticks, null when unknown) and from which entry name; null for other names. */
export function parseAside(name: string): { entryName: string; pid: number; startTicks: string | null } | null {
  const match = ASIDE_NAME.exec(name)
  if (!match) return null
  const ticks = match[3]
  return { entryName: match[1] as string, pid: Number(match[2]), startTicks: ticks === undefined || ticks === 'x' ? null : ticks }
}

type Taken = { aside: string } | 'changed' | 'missing' | 'read-only'

/**
 * `dir/name` for a plain file name in a registry folder (resolved when the registry is made): what `join` returns,
 * without its character-by-character normalizing pass, which was two such passes of every compare-and-delete.
 */
function inDir(dir: string, name: string): string {
  return dir.endsWith(sep) ? dir + name : dir + sep + name
}

/**
 * The one mechanism behind compare-and-delete, compare-and-move (quarantine) and the claim's swap. POSIX has no
 * conditional unlink or rename, so the file is renamed to a private name (atomic: from then on no writer can
 * change what we hold), compared with what was judged, and put back when it is not that version.
 */
function takeAside(dir: string, name: string, judged: Judged): Taken {
  const path = inDir(dir, name)
  const aside = inDir(dir, asideName(name))
  try {
    renameSync(path, aside)
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return 'missing'
    if (isErrno(error, 'EACCES', 'EPERM', 'EROFS')) return 'read-only'
    throw error
  }
  if (holds(aside, judged)) return { aside }
  putBack(aside, path)
  return 'changed'
}

/**
 * Put a file taken aside back under its name, unless a newer version landed there meanwhile (that one stands).
 * When even that fails, the file stays under its aside name, which a later scan restores once we are gone.
 */
function putBack(aside: string, path: string): void {
  try {
    placeExclusive(aside, path)
  } catch {
    return
  }
  unlinkQuiet(aside)
}

/**
 * Give the file at `source` the name `path` too, never replacing a file already there; false when one is.
 * `link` does that atomically. Where the filesystem has no hard links (vfat, some FUSE and SMB mounts: EPERM,
 * ENOTSUP), a rename would overwrite a newer version and Node has no renameat2(RENAME_NOREPLACE), so the bytes
 * are copied into a file created with O_EXCL instead: never an overwrite; a reader may see it short for a moment.
 */
export function placeExclusive(source: string, path: string): boolean {
  try {
    linkSync(source, path)
    return true
  } catch (error) {
    if (isErrno(error, 'EEXIST')) return false
    if (!isErrno(error, ...NO_HARD_LINKS)) throw error
  }
  const fd = openSync(source, READ_FLAGS)
  let bytes: Buffer
  try {
    bytes = readFileSync(fd)
  } finally {
    closeSync(fd)
  }
  return createInPlace(path, bytes)
}

/**
 * Delete `dir/name` only if it still holds exactly `judged`: taken aside, compared, and put back when a newer
 * version was taken by mistake (see {@link takeAside}).
 */
export function compareAndDelete(dir: string, name: string, judged: Judged): DeleteOutcome {
  const taken = takeAside(dir, name, judged)
  if (typeof taken === 'string') return taken
  unlinkQuiet(taken.aside)
  return 'deleted'
}

/**
 * Replace `dir/name` by `data` only while it holds exactly `judged` (or nothing): a version someone else wrote,
 * before or during the swap, stands and the swap reports `changed`. Ours is taken aside first, so nobody's
 * write can land between our check and our write; the new file is linked into place, never over another.
 */
export function compareAndSwap(dir: string, name: string, judged: Judged, data: string): 'swapped' | 'changed' {
  try {
    const path = join(dir, name)
    const temp = writeTemp(dir, name, Buffer.from(data))
    try {
      const taken = takeAside(dir, name, judged)
      if (taken === 'changed') return 'changed'
      if (taken === 'read-only') throw new RegistryError('E_PERM', `Cannot replace ${path}: the registry folder refused a rename; check its owner and mode (700).`, { path })
      let placed: boolean
      try {
        placed = placeExclusive(temp, path)
      } catch (error) {
        if (typeof taken !== 'string') putBack(taken.aside, path)
        throw error
      }
      // Not placed: someone else's version landed while ours was aside; it is newer than ours, so ours goes.
      if (typeof taken !== 'string') unlinkQuiet(taken.aside)
      return placed ? 'swapped' : 'changed'
    } finally {
      unlinkQuiet(temp)
    }
  } catch (error) {
    throw spaceError(error, dir)
  }
}

/** True when the file at `path` (not followed if a link) is exactly the judged version: one open, one read, one close. */
function holds(path: string, judged: Judged): boolean {
  if (!Buffer.isBuffer(judged)) {
    try {
      const stat = lstatSync(path)
      return stat.ino === judged.ino && stat.size === judged.size && stat.mtimeMs === judged.mtimeMs
    } catch {
      return false
    }
  }
  const bytes = judged
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

/**
 * Move the corrupt file `dir/name` into `.quarantine/` (never deleted) if it is still exactly the judged version
 * (compare-and-move: a valid rewrite since the verdict stays where it is); returns the new path, or null.
 */
export function quarantine(dir: string, name: string, judged: Judged): string | null {
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
  const taken = takeAside(dir, name, judged)
  if (typeof taken === 'string') return null
  try {
    renameSync(taken.aside, target)
    return target
  } catch {
    putBack(taken.aside, join(dir, name))
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
