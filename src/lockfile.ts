import { createHash } from 'node:crypto'
import { closeSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, unlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { RegistryError, isErrno } from './errors.js'
import { ensureDir } from './store.js'

/** How this platform's kernel holds a lock; one implementation per kind of kernel object, chosen once. */
export interface LockMechanism {
  /** The name of the lock `key` (a workspace id, or `name\0<name>`) of registry `dir`; also this process's key for it. */
  address(dir: string, key: string): string
  /** Take the lock without waiting: a function that lets it go, or null when it is held (by this process too). */
  take(address: string): Promise<(() => Promise<void>) | null>
  /** Whether the lock is held now; asked without waiting and without keeping it. */
  state(address: string): Promise<'held' | 'free'>
  /** Remove lock files no one holds (left by a killed holder), each only after taking its lock; their paths. */
  sweep?(dir: string, dryRun: boolean): string[]
}

/**
 * Open `path` holding an exclusive flock(2) lock on the new open file description: its descriptor, or null when
 * another description holds the lock. `create` false: ENOENT is thrown for a missing file.
 */
export type OpenLocked = (path: string, create: boolean) => number | null

/** Subfolder of the registry folder holding the lock files (macOS, BSDs); the entry scanner never looks inside. */
export const LOCKS_DIR = '.locks'

// From <sys/fcntl.h>, identical on macOS (xnu), FreeBSD, OpenBSD and NetBSD; Node's fs.constants lacks O_EXLOCK.
const BSD_OPEN = { O_RDWR: 0x2, O_NONBLOCK: 0x4, O_EXLOCK: 0x20, O_NOFOLLOW: 0x100, O_CREAT: 0x200 } as const
const FLOCK_PLATFORMS = new Set(['darwin', 'freebsd', 'openbsd', 'netbsd'])

/**
 * The open(2) flags that take a workspace lock file on `platform` (read-write, non-blocking, exclusive flock taken
 * atomically with the open, no symlink as the last component; `create` adds O_CREAT), or null on a platform that
 * locks otherwise (Linux, Windows) or not at all. libuv adds O_CLOEXEC itself, so spawned children never inherit it.
 */
export function lockOpenFlags(platform: string, create = true): number | null {
  if (!FLOCK_PLATFORMS.has(platform)) return null
  const { O_RDWR, O_NONBLOCK, O_EXLOCK, O_NOFOLLOW, O_CREAT } = BSD_OPEN
  return O_RDWR | O_NONBLOCK | O_EXLOCK | O_NOFOLLOW | (create ? O_CREAT : 0)
}

/** The real primitive: one open(2) with O_EXLOCK | O_NONBLOCK; EWOULDBLOCK (EAGAIN) means another description holds it. */
export function openWithExlock(platform: string = process.platform): OpenLocked {
  return (path, create) => {
    const flags = lockOpenFlags(platform, create)
    if (flags === null) throw new RegistryError('E_UNSUPPORTED', `open(2) with O_EXLOCK is not available on ${platform}.`)
    try {
      return openSync(path, flags, 0o600)
    } catch (error) {
      if (isErrno(error, 'EWOULDBLOCK', 'EAGAIN')) return null
      // A file system without flock support (some network mounts) must never look like "held" or "free".
      if (isErrno(error, 'EOPNOTSUPP', 'ENOTSUP')) {
        throw new RegistryError('E_UNSUPPORTED', `The registry folder's file system does not support flock locks (${path}): put the registry on a local disk.`)
      }
      throw error
    }
  }
}

/** Whether descriptor `fd` is the file `path` names now (same device and inode). */
function namesFile(fd: number, path: string): boolean {
  const opened = fstatSync(fd, { bigint: true })
  const named = lstatSync(path, { bigint: true, throwIfNoEntry: false })
  return named !== undefined && named.ino === opened.ino && named.dev === opened.dev
}

// Each retry means a holder unlinked the file between our open and our lock: it is gone at the next open.
const MAX_RELINKS = 100

/**
 * Take `path` with the classic lock-file protocol: open-and-lock, then check that the path still names the locked
 * inode (a holder unlinks the file on release while still holding it, so a description opened just before that
 * unlink locks an orphaned inode and must retry). A holder alone unlinks its file, so no lasting garbage is left
 * but a killed holder's file, which the next holder (or prune, after taking it) removes.
 */
function takeFile(openLocked: OpenLocked, path: string, create: boolean): number | null {
  for (let attempt = 0; attempt < MAX_RELINKS; attempt++) {
    let fd: number | null
    try {
      fd = openLocked(path, create)
    } catch (error) {
      if (!create && isErrno(error, 'ENOENT')) return null
      throw error
    }
    if (fd === null) return null
    try {
      if (namesFile(fd, path)) return fd
    } catch (error) {
      closeSync(fd)
      throw error
    }
    closeSync(fd)
    if (!create) return null
  }
  return null
}

/** Unlink while still holding (only a holder may unlink), then close, which drops the lock. */
function letGo(fd: number, path: string): void {
  try {
    unlinkSync(path)
  } catch {
    // the lock is the kernel's; a file left behind is reused and removed by the next holder
  }
  closeSync(fd)
}

function ensureLocksDir(dir: string): string {
  ensureDir(dir)
  const locks = join(dir, LOCKS_DIR)
  try {
    mkdirSync(locks, { mode: 0o700 })
  } catch (error) {
    if (!isErrno(error, 'EEXIST')) throw error
  }
  const stat = lstatSync(locks)
  if (!stat.isDirectory()) throw new RegistryError('E_UNSAFE_DIR', `${locks} is not a folder: remove it.`, { dir: locks })
  return locks
}

/**
 * The lock as a file taken with O_EXLOCK (macOS, BSDs): `<dir>/.locks/<id>` for a workspace, `name-<hash>` for a
 * name. `openLocked` is the primitive (tests on Linux replace it with an open plus a real flock(2) from flock(1)).
 */
export function createFileLockMechanism(openLocked: OpenLocked): LockMechanism {
  return {
    address(dir, key) {
      const file = /^[0-9a-f]{16}$/.test(key) ? key : `name-${createHash('sha256').update(key).digest('hex').slice(0, 32)}`
      return join(dir, LOCKS_DIR, file)
    },
    async take(path) {
      let fd: number | null
      try {
        ensureLocksDir(dirname(dirname(path)))
        fd = takeFile(openLocked, path, true)
      } catch (error) {
        // Unlike a socket, a lock file needs a writable registry folder.
        if (!isErrno(error, 'EROFS', 'EACCES', 'EPERM')) throw error
        const code = (error as NodeJS.ErrnoException).code as string
        throw new RegistryError('E_UNSUPPORTED', `Cannot create the lock file ${path} (${code}): on this platform a workspace lock is a file in the registry folder, so the folder must be writable.`, { path })
      }
      if (fd === null) return null
      let done = false
      return async () => {
        if (done) return
        done = true
        letGo(fd, path)
      }
    },
    async state(path) {
      // flock has no "test": the probe takes the lock for a moment and gives it back, leaving the file in place.
      const fd = takeFile(openLocked, path, false)
      if (fd !== null) {
        closeSync(fd)
        return 'free'
      }
      return lstatSync(path, { throwIfNoEntry: false }) ? 'held' : 'free'
    },
    sweep(dir, dryRun) {
      let names: string[]
      try {
        names = readdirSync(join(dir, LOCKS_DIR))
      } catch {
        return []
      }
      const removed: string[] = []
      for (const name of names) {
        const path = join(dir, LOCKS_DIR, name)
        let fd: number | null
        try {
          fd = takeFile(openLocked, path, false)
        } catch {
          continue // unreadable or unsupported: proves nothing, left alone
        }
        if (fd === null) continue
        if (dryRun) closeSync(fd)
        else letGo(fd, path)
        removed.push(path)
      }
      return removed
    },
  }
}
