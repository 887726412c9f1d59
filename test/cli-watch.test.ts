import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { Registry } from '../src/registry.js'
import { waitFor } from './helpers.js'

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url))
const hasTmux = spawnSync('tmux', ['-V']).status === 0

let root: string
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'wsreg-cli-watch-'))
})
afterEach(() => rmSync(root, { recursive: true, force: true }))

it('wsreg watch --json prints one JSON event per line and exits 0 on SIGINT', async () => {
  const registry = new Registry({ dir: join(root, 'registry') })
  const cwd = join(root, 'a')
  mkdirSync(cwd)
  const child = spawn(process.execPath, [CLI, '--dir', registry.dir, 'watch', '--json', '--interval', '50'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  const lines = (): Array<Record<string, unknown>> => out.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>)
  try {
    await waitFor(() => lines().length === 1, 4000, 'ready')
    await registry.write({ cwd, name: 'alpha' })
    await waitFor(() => lines().length === 2, 4000, 'up')
    await registry.remove(cwd)
    await waitFor(() => lines().length === 3, 4000, 'down')
    expect(lines()).toMatchObject([
      { type: 'ready', entries: [] },
      { type: 'up', status: 'alive', entry: { name: 'alpha', pid: process.pid } },
      { type: 'down', reason: 'removed', entry: { name: 'alpha' } },
    ])
    for (const line of lines()) expect(Object.keys(line).slice(0, 2).concat(String(Date.parse(line.at as string) > 0))).toEqual(['type', 'at', 'true'])
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
    await waitFor(() => screen().includes('No workspaces'), 4000, 'the empty table')
    await registry.write({ cwd, name: 'alpha-live' })
    await waitFor(() => /alpha-live\s+alive/.test(screen()), 4000, 'the new row')
    expect(screen()).not.toContain('No workspaces')
    await registry.remove(cwd)
    await waitFor(() => screen().includes('No workspaces'), 4000, 'the row to go')
    execFileSync('tmux', ['send-keys', '-t', session, 'C-c'])
    await waitFor(() => existsSync(status) && readFileSync(status, 'utf8').trim(), 4000, 'the exit status')
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
    await waitFor(() => frames().length === 1, 4000, 'the first frame')
    await registry.write({ cwd, name: 'alpha' })
    await waitFor(() => frames().at(-1)?.[0]?.name === 'alpha', 4000, 'a frame with the new row')
    expect(frames()[0]).toEqual([])
    const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
    child.kill('SIGINT')
    expect(await exited).toBe(0)
  } finally {
    child.kill('SIGKILL')
  }
})
