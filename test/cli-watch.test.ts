import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { Registry } from '../src/registry.js'

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url))
const hasTmux = spawnSync('tmux', ['-V']).status === 0

let root: string
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'wsreg-cli-watch-'))
})
afterEach(() => rmSync(root, { recursive: true, force: true }))

async function until<T>(check: () => T | undefined | false, what: string, timeoutMs = 4000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

it('wsreg watch --json prints one JSON event per line and exits 0 on SIGINT', async () => {
  const registry = new Registry({ dir: join(root, 'registry') })
  const cwd = join(root, 'a')
  mkdirSync(cwd)
  const child = spawn(process.execPath, [CLI, '--dir', registry.dir, 'watch', '--json', '--interval', '50'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  const lines = (): Array<Record<string, unknown>> => out.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>)
  try {
    await until(() => lines().length === 1, 'ready')
    await registry.write({ cwd, name: 'alpha' })
    await until(() => lines().length === 2, 'up')
    await registry.remove(cwd)
    await until(() => lines().length === 3, 'down')
    expect(lines()).toMatchObject([
      { type: 'ready', entries: [] },
      { type: 'up', status: 'alive', entry: { name: 'alpha', pid: process.pid } },
      { type: 'down', reason: 'removed', entry: { name: 'alpha' } },
    ])
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    child.kill('SIGINT')
    expect(await exited).toEqual({ code: 0, signal: null })
  } finally {
    child.kill('SIGKILL')
  }
})

it('wsreg watch refuses a malformed --interval with a usage error', () => {
  const result = spawnSync(process.execPath, [CLI, '--dir', join(root, 'registry'), 'watch', '--interval', 'soon'], { encoding: 'utf8' })
  expect(result.status).toBe(2)
  expect(result.stderr).toContain('--interval takes a whole number of milliseconds')
})

it.skipIf(!hasTmux)('wsreg ls --watch redraws the table in a terminal and exits 0 on Ctrl-C', async () => {
  const registry = new Registry({ dir: join(root, 'registry') })
  const cwd = join(root, 'a')
  mkdirSync(cwd)
  const session = `wsreg-test-${process.pid}`
  const status = join(root, 'status')
  const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} --dir ${JSON.stringify(registry.dir)} ls --watch --interval 50; echo $? > ${JSON.stringify(status)}`
  execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '200', '-y', '40', command], { env: { ...process.env, TERM: 'xterm-256color' } })
  const screen = (): string => spawnSync('tmux', ['capture-pane', '-p', '-t', session], { encoding: 'utf8' }).stdout ?? ''
  try {
    await until(() => screen().includes('No workspaces'), 'the empty table')
    await registry.write({ cwd, name: 'alpha-live' })
    await until(() => /alpha-live\s+alive/.test(screen()), 'the new row')
    expect(screen()).not.toContain('No workspaces')
    await registry.remove(cwd)
    await until(() => screen().includes('No workspaces'), 'the row to go')
    execFileSync('tmux', ['send-keys', '-t', session, 'C-c'])
    await until(() => existsSync(status) && readFileSync(status, 'utf8').trim(), 'the exit status')
    expect(readFileSync(status, 'utf8').trim()).toBe('0')
  } finally {
    spawnSync('tmux', ['kill-session', '-t', session])
  }
})

it('wsreg ls --watch --json prints a fresh list per change when stdout is not a terminal', async () => {
  const registry = new Registry({ dir: join(root, 'registry') })
  const cwd = join(root, 'a')
  mkdirSync(cwd)
  const child = spawn(process.execPath, [CLI, '--dir', registry.dir, 'ls', '--watch', '--json', '--interval', '50'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  const frames = (): Array<Array<{ name: string }>> => out.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Array<{ name: string }>)
  try {
    await until(() => frames().length === 1, 'the first frame')
    await registry.write({ cwd, name: 'alpha' })
    await until(() => frames().at(-1)?.[0]?.name === 'alpha', 'a frame with the new row')
    expect(frames()[0]).toEqual([])
    const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
    child.kill('SIGINT')
    expect(await exited).toBe(0)
  } finally {
    child.kill('SIGKILL')
  }
})
