import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, expect } from 'vitest'
import { RegistryError } from '../src/index.js'
import { HISTORY_NAME } from '../src/history.js'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const FIXTURES = join(ROOT, 'test', 'fixtures')
export const CLI = join(ROOT, 'dist', 'cli', 'main.js')

const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length) cleanups.pop()?.()
})

/** A fresh real temp folder (canonical path), removed after the test. */
export function tempDir(prefix = 'wsreg-test-'): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A temp folder holding a registry folder `reg` and a workspace folder `ws`. */
export function sandbox(): { root: string; dir: string; ws: string } {
  const root = tempDir()
  chmodSync(root, 0o755)
  const ws = join(root, 'ws')
  mkdirSync(ws)
  return { root, dir: join(root, 'reg'), ws }
}

/** Spawn a child that is killed after the test if still running. */
export function track(child: ChildProcess): ChildProcess {
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return child
}

/** Run `node test/fixtures/<name>` with args. */
export function fixture(name: string, args: string[] = [], options: SpawnOptions = {}): ChildProcess {
  return track(spawn(process.execPath, [join(FIXTURES, name), ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options }))
}

/** A live process that does nothing until killed. */
export function sleeper(options: SpawnOptions = {}): ChildProcess {
  return track(spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore', ...options }))
}

/** Resolve when `child` has exited (code or signal). */
export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
}

/** Collect a child's stdout. */
export function stdoutOf(child: ChildProcess): () => string {
  let text = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
  return () => text
}

/** Poll `condition` until it holds (or throw after `timeoutMs`): tests wait for facts, never for time. */
export async function waitFor<T>(condition: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await condition()
    if (value) return value as NonNullable<T>
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** A pid that just exited (its identity was real), and its start time while it lived. */
export async function deadPid(): Promise<number> {
  const child = sleeper()
  const pid = child.pid as number
  child.kill('SIGKILL')
  await exited(child)
  return pid
}

/** Run the built CLI; resolves with exit code and output. */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = track(spawn(process.execPath, [CLI, ...args], { cwd: options.cwd ?? ROOT, env: { ...process.env, NO_COLOR: '1', ...options.env } }))
    let stdout = ''
    let stderr = ''
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** Write an entry for a real process, then SIGKILL it: a dead entry with a genuine identity. */
export async function writeDeadEntry(registry: { write(input: { cwd: string; pid?: number }): Promise<unknown> }, cwd: string): Promise<void> {
  const child = sleeper()
  await registry.write({ cwd, pid: child.pid })
  child.kill('SIGKILL')
  await exited(child)
}

/** The RegistryError `promise` rejects with (failing the test when it resolves or rejects with something else). */
export async function refusal(promise: Promise<unknown>): Promise<RegistryError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  )
  expect(error).toBeInstanceOf(RegistryError)
  return error as RegistryError
}

/** The names in a registry folder other than its history files (which every deletion appends to). */
export function filesIn(dir: string): string[] {
  return readdirSync(dir).filter((name) => !HISTORY_NAME.test(name))
}
