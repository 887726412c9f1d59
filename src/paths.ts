import { hash } from 'node:crypto'
import { existsSync, readlinkSync, realpathSync } from 'node:fs'
import { homedir } from 'node:os'
import { isAbsolute, join, parse, resolve, sep } from 'node:path'
import { RegistryError } from './errors.js'

/** Exact names the registry reads: `<id>.json` and the legacy `<id>-<pid>.json`. */
export const ENTRY_NAME = /^([0-9a-f]{16})(?:-([0-9]+))?\.json$/
/** Temp files of writers: an entry name, a dot, anything. */
export const TEMP_NAME = /^[0-9a-f]{16}(?:-[0-9]+)?\.json\..+$/
/** A workspace id as given on a command line. */
export const ID_PATTERN = /^[0-9a-f]{16}$/
/** Folder (inside the registry) where corrupt files are moved, never deleted. */
export const QUARANTINE_DIR = '.quarantine'

/**
 * The canonical form of a workspace root: absolute, symlinks resolved through the longest prefix that exists,
 * the rest kept lexically, no trailing separator. A symlink, a relative path and a trailing slash name one
 * workspace, and a path behind a symlinked parent names the same one before and after it is created.
 */
export function canonicalCwd(cwd: string): string {
  if (typeof cwd !== 'string' || cwd.length === 0 || cwd.includes('\0')) {
    throw new RegistryError('E_INVALID', `Invalid workspace path ${JSON.stringify(cwd)}: pass a non-empty path without NUL bytes.`)
  }
  const absolute = realPath(resolve(cwd))
  return absolute.length > 1 && absolute.endsWith(sep) && !/^[A-Za-z]:\\$/.test(absolute) ? absolute.slice(0, -1) : absolute
}

// Linux gives up after 40 links in one lookup (ELOOP); so do we, keeping the rest lexical.
const MAX_LINKS = 40

/**
 * An absolute path with symlinks resolved through its longest existing prefix and the rest kept lexically.
 * A missing path must not keep the names it was typed with: a lock taken before `git clone` creates the folder,
 * or on a registry folder not yet made, must be the one taken after (DESIGN.md §1, §4).
 */
export function realPath(absolute: string): string {
  let path = absolute
  for (let links = 0; ; links++) {
    const { real, rest } = existingPrefix(path)
    const [first, ...after] = rest
    if (first === undefined) return real
    // The first missing name may be a dangling symlink (to a folder about to be created): follow it by hand.
    const target = links < MAX_LINKS ? linkTarget(join(real, first)) : null
    if (target === null) return join(real, ...rest)
    path = resolve(real, target, ...after)
  }
}

/** The longest prefix of `path` that resolves (as its real path) and the names after it. */
function existingPrefix(path: string): { real: string; rest: string[] } {
  try {
    return { real: realpathSync.native(path), rest: [] }
  } catch {
    // Missing somewhere: find where below.
  }
  const root = parse(path).root
  const names = path.slice(root.length).split(sep).filter((name) => name !== '')
  const prefix = (count: number): string => join(root, ...names.slice(0, count))
  // Prefixes resolve up to a point and never after it (the path is already free of `..`), so a binary search
  // finds the point in a few lookups: walking up one name at a time costs minutes on a deep missing path.
  let low = 0
  let high = names.length - 1
  while (low < high) {
    const middle = Math.ceil((low + high) / 2)
    if (existsSync(prefix(middle))) low = middle
    else high = middle - 1
  }
  for (let count = low; count > 0; count--) {
    try {
      return { real: realpathSync.native(prefix(count)), rest: names.slice(count) }
    } catch {
      // Changed since the search (or a link we may not read): one name up.
    }
  }
  return { real: root, rest: names }
}

function linkTarget(path: string): string | null {
  try {
    return readlinkSync(path)
  } catch {
    return null // not a link, or not there
  }
}

/** Longest cwd, in UTF-8 bytes, an entry may record (Linux PATH_MAX); readers hold files to the same limit. */
export const MAX_CWD_BYTES = 4096

/**
 * Whether a path string may have lost bytes when it was decoded: a U+FFFD replacement character (what Node makes of
 * bytes that are not UTF-8, e.g. in `process.cwd()`) or a lone surrogate (which no UTF-8 encodes).
 */
export function mayBeLossy(path: string): boolean {
  return /[\uFFFD\p{Cs}]/u.test(path)
}

/**
 * The canonical cwd an entry may record, or E_INVALID: a name the registry could not write back byte for byte
 * would later be judged missing (and its owner an orphan), so it is refused here rather than guessed about later.
 */
export function recordableCwd(cwd: string): string {
  const canonical = canonicalCwd(cwd)
  const bytes = Buffer.byteLength(canonical)
  if (bytes > MAX_CWD_BYTES) {
    throw new RegistryError('E_INVALID', `Workspace path ${canonical.slice(0, 60)}… is ${bytes} bytes long: the limit is ${MAX_CWD_BYTES} UTF-8 bytes; move the workspace to a shorter path.`)
  }
  // A U+FFFD that exists on disk is a real character; one that does not may stand for bytes we never saw.
  if (mayBeLossy(canonical) && !existsSync(canonical)) {
    throw new RegistryError(
      'E_INVALID',
      `Workspace path ${JSON.stringify(canonical)} cannot be recorded exactly: it holds U+FFFD or a lone surrogate, which is how bytes that are not UTF-8 look once decoded, and no folder of that exact name exists. Rename the folder to a valid UTF-8 name.`,
    )
  }
  return canonical
}

/** Id of an already-canonical path: the first 16 hex chars of its SHA-256. */
export function idOfCanonical(canonical: string): string {
  // The one-shot hash() is about twice as fast as createHash() per call; every listed entry pays one (the id check).
  return hash('sha256', canonical, 'hex').slice(0, 16)
}

/** The workspace id of `cwd`: first 16 lowercase hex chars of SHA-256 over its canonical path. */
export function workspaceId(cwd: string): string {
  return idOfCanonical(canonicalCwd(cwd))
}

/** The environment variable that overrides the registry folder for `app`, e.g. `MY_APP_REGISTRY_DIR`. */
export function registryDirEnvName(app: string): string {
  return `${app.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_REGISTRY_DIR`
}

function checkAppName(app: string): void {
  if (typeof app !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(app)) {
    throw new RegistryError(
      'E_INVALID',
      `Invalid app name ${JSON.stringify(app)}: use letters, digits, '.', '_' or '-' (it becomes a folder name).`,
    )
  }
}

/**
 * Where `app` keeps its registry: env `<APP>_REGISTRY_DIR`, then `$XDG_STATE_HOME/<app>/workspaces`,
 * then `~/.local/state/<app>/workspaces` (Windows: `%LOCALAPPDATA%\<app>\workspaces`).
 */
export function defaultRegistryDir(app: string, env: NodeJS.ProcessEnv = process.env): string {
  checkAppName(app)
  const fromEnv = env[registryDirEnvName(app)]
  if (fromEnv) return absoluteDir(fromEnv, registryDirEnvName(app))
  if (process.platform === 'win32' && env.LOCALAPPDATA) return join(absoluteDir(env.LOCALAPPDATA, 'LOCALAPPDATA'), app, 'workspaces')
  // The XDG spec says a relative XDG_STATE_HOME is invalid and must be ignored.
  if (env.XDG_STATE_HOME && isAbsolute(env.XDG_STATE_HOME)) return join(env.XDG_STATE_HOME, app, 'workspaces')
  let home = ''
  try {
    home = env.HOME || homedir()
  } catch {
    home = ''
  }
  if (!home || !isAbsolute(home)) {
    throw new RegistryError(
      'E_NO_HOME',
      `No home folder to keep the ${app} registry in: set ${registryDirEnvName(app)} or XDG_STATE_HOME to an absolute path.`,
    )
  }
  return join(home, '.local', 'state', app, 'workspaces')
}

/** Resolve a configured folder, refusing relative paths (they would depend on whoever's cwd). */
export function absoluteDir(dir: string, source: string): string {
  if (typeof dir !== 'string' || dir.length === 0 || dir.includes('\0') || !isAbsolute(dir)) {
    throw new RegistryError(
      'E_INVALID',
      `Registry folder ${JSON.stringify(dir)} from ${source} is not an absolute path: give a full path such as /home/me/.local/state/app/workspaces.`,
    )
  }
  return resolve(dir)
}
