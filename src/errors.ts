import type { Entry } from './entry.js'
import type { LockHolder } from './lock.js'

/** Stable string codes carried by every {@link RegistryError}; callers `switch` on them. */
export type RegistryErrorCode =
  /** Another process (or this one) holds the workspace lock. */
  | 'E_LOCKED'
  /** A claim with `uniqueName` found a live workspace of the same name running at another cwd. */
  | 'E_NAME_TAKEN'
  /** The registry folder's disk (or the user's quota) is full: the write failed whole and the previous version stands. */
  | 'E_NO_SPACE'
  /** An entry file is not an entry (bad JSON, wrong shape, not a regular file) and could not be quarantined; read and list skip such files. */
  | 'E_CORRUPT'
  /** An entry file exists but could not be opened or read (EMFILE, EACCES, EIO…); nothing was moved or changed. */
  | 'E_UNREADABLE'
  /** The registry folder is a symlink, writable by others, or owned by another user. */
  | 'E_UNSAFE_DIR'
  /** An argument is malformed (bad cwd, bad pid, bad id). */
  | 'E_INVALID'
  /** No home folder to place the default registry in. */
  | 'E_NO_HOME'
  /** The process to act on belongs to another user, or etcd refused the login or access to the store's keys. */
  | 'E_PERM'
  /** The requested entry does not exist. */
  | 'E_NOT_FOUND'
  /** This platform has no kernel-held lock the library can use without a native addon. */
  | 'E_UNSUPPORTED'
  /** A remote store (etcd) cannot be reached, or its optional client library is not installed. */
  | 'E_UNAVAILABLE'

/** Details of `E_LOCKED`: who holds the workspace (a claim's loser gets the holder's `pid` and current `entry`). */
export interface LockedDetails {
  /** The workspace root. */
  cwd?: string
  /** The lock holder, as its side file tells (when known). */
  holder?: LockHolder | undefined
  /** The process holding the workspace (the claim's owner). */
  pid?: number | undefined
  /** The holder's current entry, so a loser can use its url. */
  entry?: Entry | undefined
  /** Set when a held claim was lost (its entry replaced by another writer, or its lease lapsed). */
  lost?: boolean
  [key: string]: unknown
}

/** Details of `E_NAME_TAKEN`: the live workspace that runs under the name. */
export interface NameTakenDetails {
  /** The name asked for. */
  name: string
  /** The process running under that name. */
  pid: number
  /** Its entry (another cwd). */
  entry: Entry
  [key: string]: unknown
}

/** The `details` of a {@link RegistryError} with code `C`. */
export type RegistryErrorDetails<C extends RegistryErrorCode = RegistryErrorCode> = [C] extends ['E_LOCKED']
  ? LockedDetails
  : [C] extends ['E_NAME_TAKEN']
    ? NameTakenDetails
    : Partial<LockedDetails> & Partial<NameTakenDetails> & Record<string, unknown>

/** The one error class of the library: expected failures carry a `code`, a message naming the fix, and details. */
export class RegistryError<C extends RegistryErrorCode = RegistryErrorCode> extends Error {
  /** Stable code to `switch` on. */
  readonly code: C
  /** Extra facts about the failure, typed per code (narrow with {@link RegistryError.is}). */
  readonly details: RegistryErrorDetails<C>

  constructor(code: C, message: string, details: RegistryErrorDetails<C> | Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options)
    this.name = 'RegistryError'
    this.code = code
    this.details = details as RegistryErrorDetails<C>
  }

  /** True when this error has code `code`; narrows `details` to that code's shape. */
  is<K extends RegistryErrorCode>(code: K): this is RegistryError<K> {
    return (this.code as RegistryErrorCode) === code
  }
}

/** True when `error` is a {@link RegistryError} (with code `code`, when given); narrows its `details`. */
export function isRegistryError<K extends RegistryErrorCode = RegistryErrorCode>(error: unknown, code?: K): error is RegistryError<K> {
  return error instanceof RegistryError && (code === undefined || error.code === code)
}

/** True for an fs error with one of the given codes. */
export function isErrno(error: unknown, ...codes: string[]): error is NodeJS.ErrnoException {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? '')
}
