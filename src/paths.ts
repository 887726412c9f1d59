import { hash } from 'node:crypto'
import { realpathSync } from 'node:fs'
import { homedir } from 'node:os'
import { isAbsolute, join, resolve, sep } from 'node:path'
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
 * The canonical form of a workspace root: absolute, symlinks resolved when the path exists,
 * no trailing separator. A symlink, a relative path and a trailing slash name one workspace.
 */
export function canonicalCwd(cwd: string): string {
  if (typeof cwd !== 'string' || cwd.length === 0 || cwd.includes('\0')) {
    throw new RegistryError('E_INVALID', `Invalid workspace path ${JSON.stringify(cwd)}: pass a non-empty path without NUL bytes.`)
  }
  let absolute = resolve(cwd)
  try {
    absolute = realpathSync.native(absolute)
  } catch {
    // A workspace that no longer exists keeps its lexical path, so its entry can still be found.
  }
  return absolute.length > 1 && absolute.endsWith(sep) && !/^[A-Za-z]:\\$/.test(absolute) ? absolute.slice(0, -1) : absolute
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
