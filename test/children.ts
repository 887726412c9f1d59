// Helpers for tests that run real child processes from test/fixtures (they import the built dist/).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach } from 'vitest'
import { waitFor } from './helpers.js'

export const FIXTURES = new URL('./fixtures/', import.meta.url).pathname
export const CLI = new URL('../dist/cli/main.js', import.meta.url).pathname

const cleanups: Array<() => void> = []
afterEach(() => {
  while (cleanups.length) cleanups.pop()?.()
})

/** A fresh temp folder with a registry folder and a workspace folder in it, removed after the test. */
export function sandbox(): { root: string; dir: string; cwd: string } {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'wsreg-process-')))
  const cwd = join(root, 'workspace')
  mkdirSync(cwd)
  cleanups.push(() => rmSync(root, { recursive: true, force: true }))
  return { root, dir: join(root, 'registry'), cwd }
}

/** A running child with its stdout as a queue of lines. */
export interface Child {
  process: ChildProcess
  pid: number
  /** The next stdout line, parsed as JSON when it looks like JSON. */
  next(): Promise<any>
  /** Resolves with how the child ended. */
  ended: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Start `node <file> ...args` (a fixture file name, or an absolute path such as {@link CLI}); it is SIGKILLed after the test if still running. */
export function start(file: string, args: string[], options: SpawnOptions = {}): Child {
  const path = isAbsolute(file) ? file : join(FIXTURES, file)
  const child = spawn(process.execPath, [path, ...args], { stdio: ['pipe', 'pipe', 'inherit'], ...options })
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  let running = true
  void ended.then(() => (running = false))
  cleanups.push(() => {
    if (running) child.kill('SIGKILL')
  })
  const lines: string[] = []
  const waiting: Array<(line: string) => void> = []
  if (child.stdout) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const waiter = waiting.shift()
      if (waiter) waiter(line)
      else lines.push(line)
    })
  }
  return {
    process: child,
    pid: child.pid as number,
    ended,
    next: async () => {
      const line = lines.length ? (lines.shift() as string) : await new Promise<string>((resolve) => waiting.push(resolve))
      return line.startsWith('{') ? JSON.parse(line) : line
    },
  }
}

/** Poll `condition` until it holds (no fixed sleeps); fails the test after `timeoutMs`. */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  await waitFor(condition, timeoutMs, condition.toString())
}

/** True while `pid` exists and is not a zombie. */
export function running(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return true
  }
}
