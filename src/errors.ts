/** Stable string codes carried by every {@link RegistryError}; callers `switch` on them. */
export type RegistryErrorCode =
  /** Another process (or this one) holds the workspace lock. */
  | 'E_LOCKED'
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

/** The one error class of the library: expected failures carry a `code`, a message naming the fix, and details. */
export class RegistryError extends Error {
  /** Stable code to `switch` on. */
  readonly code: RegistryErrorCode
  /** Extra facts about the failure (for `E_LOCKED`: the `holder`). */
  readonly details: Record<string, unknown>

  constructor(code: RegistryErrorCode, message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options)
    this.name = 'RegistryError'
    this.code = code
    this.details = details
  }
}

/** True for an fs error with one of the given codes. */
export function isErrno(error: unknown, ...codes: string[]): error is NodeJS.ErrnoException {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? '')
}
