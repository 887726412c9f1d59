// Real faults for the fault suite: a tiny tmpfs, read-only mounts, namespaces, descriptor limits, a stepped clock.
// Every maker here needs root (CI runs as root); `missing()` says why a fault cannot be made, for skip reasons.
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach } from 'vitest'
import { ROOT, tempDir, track } from '../helpers.js'

export const isRoot = process.getuid?.() === 0

const probed = new Map<string, boolean>()
function works(command: string, args: string[]): boolean {
  const key = [command, ...args].join(' ')
  let ok = probed.get(key)
  if (ok === undefined) {
    ok = spawnSync(command, args, { stdio: 'ignore', timeout: 10_000 }).status === 0
    probed.set(key, ok)
  }
  return ok
}

/** The faults this machine can make, by name; each probe runs the real thing once. */
const CAN: Record<string, () => boolean> = {
  root: () => isRoot,
  mount: () => isRoot && works('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs /mnt']),
  'unshare -m': () => isRoot && works('unshare', ['-m', '--propagation', 'private', 'true']),
  'unshare -p': () => isRoot && works('unshare', ['-p', '-f', '--mount-proc', 'true']),
  'unshare -T': () => isRoot && works('unshare', ['-T', 'true']),
  prlimit: () => works('prlimit', ['--nofile=64', 'true']),
  faketime: () => works('faketime', ['-f', '+0', 'true']),
}

/** Why the named faults cannot be made here (for a skip reason), or '' when they all can. */
export function missing(...needs: Array<keyof typeof CAN>): string {
  const lacking = needs.filter((need) => !(CAN[need]?.() ?? false))
  if (lacking.length === 0) return ''
  const hint = isRoot ? 'install util-linux/faketime (see .ci/run)' : 'run as root, as CI does'
  return ` (skipped: cannot make ${lacking.join(', ')} here — ${hint})`
}

const unmounts: string[] = []
afterEach(() => {
  while (unmounts.length) spawnSync('umount', ['-l', unmounts.pop() as string], { stdio: 'ignore' })
})

function mountOrThrow(args: string[]): void {
  const result = spawnSync('mount', args, { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`mount ${args.join(' ')} failed: ${result.stderr}`)
}

/** A fresh tmpfs of `sizeKiB` (a disk that fills), mounted on a temp folder and unmounted after the test. */
export function tinyDisk(sizeKiB: number): string {
  const dir = tempDir('wsreg-disk-')
  mountOrThrow(['-t', 'tmpfs', '-o', `size=${sizeKiB}k,mode=0700`, 'tmpfs', dir])
  unmounts.push(dir)
  return dir
}

/** A read-only view of `dir` (a bind mount remounted read-only), unmounted after the test. */
export function readOnlyView(dir: string): string {
  const view = tempDir('wsreg-ro-')
  mountOrThrow(['--bind', dir, view])
  unmounts.push(view)
  mountOrThrow(['-o', 'remount,bind,ro', view])
  return view
}

/** A registry folder path inside `parent` (created, mode 0700). */
export function registryIn(parent: string, name = 'reg'): string {
  const dir = join(parent, name)
  mkdirSync(dir, { mode: 0o700 })
  return dir
}

/**
 * Run `node <script> args…` behind a fault-making command prefix (`['unshare', '-m', …]`, `['prlimit', '--nofile=40']`,
 * `['faketime', …]`); resolves with exit code and output. The script runs from the project root.
 */
export function runBehind(prefix: string[], script: string, args: string[] = [], options: SpawnOptions = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const [command, ...rest] = [...prefix, process.execPath, script, ...args]
    const child = track(spawn(command as string, rest, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...options }))
    let stdout = ''
    let stderr = ''
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}
