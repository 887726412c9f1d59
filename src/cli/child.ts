import { spawn, type ChildProcess } from 'node:child_process'
import { statSync } from 'node:fs'
import { delimiter, extname, isAbsolute, join } from 'node:path'
import { isErrno } from '../errors.js'

// The platform seam of `wsreg run` and `wsreg lock`: how a command is started and how it is signalled.

/**
 * Start `file args` without a shell. On POSIX the child leads a process group (and session) of its own, so
 * {@link signalChild} reaches everything it starts and `wsreg reap --group` can end the whole tree; on Windows
 * (no process groups, and `detached` would open a console window) it stays attached. A `.cmd`/`.bat` shim on
 * Windows (`npm`, `npx`…) runs through `cmd.exe /d /s /c` with its arguments escaped, the route Node documents
 * for batch files ("Spawning .bat and .cmd files on Windows"), since spawning one directly fails with EINVAL.
 */
export function startChild(file: string, args: string[], options: { cwd?: string | undefined; env?: NodeJS.ProcessEnv }): ChildProcess {
  const env = options.env ?? process.env
  if (process.platform === 'win32') {
    const resolved = findOnPath(file, options.cwd, env)
    if (resolved && /\.(cmd|bat)$/i.test(resolved)) {
      const line = [escapeCommand(resolved), ...args.map((arg) => escapeArgument(arg, /node_modules[\\/]\.bin[\\/]/i.test(resolved)))].join(' ')
      return spawn(env.ComSpec ?? 'cmd.exe', ['/d', '/s', '/c', `"${line}"`], { cwd: options.cwd, env, stdio: 'inherit', windowsVerbatimArguments: true })
    }
    return spawn(resolved ?? file, args, { cwd: options.cwd, env, stdio: 'inherit' })
  }
  return spawn(file, args, { cwd: options.cwd, env, stdio: 'inherit', detached: true })
}

/** Send `signal` to the child's process group (POSIX), or to the child alone (Windows); a group already gone is fine. */
export function signalChild(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return
  try {
    if (process.platform === 'win32') child.kill(signal)
    else process.kill(-child.pid, signal)
  } catch (error) {
    if (!isErrno(error, 'ESRCH')) throw error
  }
}

/** True when `cwd` is an existing folder. */
export function isFolder(cwd: string): boolean {
  try {
    return statSync(cwd).isDirectory()
  } catch {
    return false
  }
}

/** Windows: the file `file` names through PATH and PATHEXT, as cmd.exe would find it (undefined when none). */
function findOnPath(file: string, cwd: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const extensions = extname(file) ? [''] : (env.PATHEXT ?? '.COM;.EXE;.BAT;.CMD').split(';').filter(Boolean)
  const folders = isAbsolute(file) || /[\\/]/.test(file) ? [cwd ?? process.cwd()] : [cwd ?? process.cwd(), ...(env.Path ?? env.PATH ?? '').split(delimiter).filter(Boolean)]
  for (const folder of folders) {
    for (const extension of extensions) {
      const candidate = isAbsolute(file) ? `${file}${extension}` : join(folder, `${file}${extension}`)
      try {
        if (statSync(candidate).isFile()) return candidate
      } catch {
        // not here
      }
    }
  }
  return undefined
}

// cmd.exe metacharacters, escaped with ^ (the rules cross-spawn follows).
const META = /([()\][%!^"`<>&|;, *?])/g

function escapeCommand(command: string): string {
  return command.replace(META, '^$1')
}

/** One argument for `cmd.exe /s /c "…"`: quoted for CommandLineToArgvW, then ^-escaped for cmd (twice for npm's cmd-shims, which re-parse it). */
function escapeArgument(arg: string, shim: boolean): string {
  let quoted = arg.replace(/(\\*)"/g, '$1$1\\"').replace(/(\\*)$/, '$1$1')
  quoted = `"${quoted}"`.replace(META, '^$1')
  return shim ? quoted.replace(META, '^$1') : quoted
}
