import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { serializeEntry } from '../src/entry.js'
import { workspaceId } from '../src/paths.js'
import { Registry } from '../src/registry.js'
import { waitFor } from './helpers.js'
import type { RegistryEvent } from '../src/transition.js'
import type { RegistryWatcher, WatchOptions } from '../src/watch.js'

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url))

let root: string
let children: ChildProcess[]
let watchers: RegistryWatcher[]

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'wsreg-watch-'))
  children = []
  watchers = []
})

afterEach(async () => {
  for (const watcher of watchers) await watcher.close()
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  rmSync(root, { recursive: true, force: true })
})

function workspace(name: string): string {
  const cwd = join(root, name)
  mkdirSync(cwd, { recursive: true })
  return cwd
}

/** Start a watcher that records every event it reports; resolves once it is ready. */
async function watch(registry: Registry, options: WatchOptions = {}): Promise<RegistryEvent[]> {
  const watcher = registry.watch(options)
  watchers.push(watcher)
  const events: RegistryEvent[] = []
  for (const name of ['ready', 'up', 'down', 'change'] as const) watcher.on(name, (event: RegistryEvent) => events.push(event))
  watcher.on('error', (error) => events.push({ type: 'error', error }))
  await waitFor(() => events.some((event) => event.type === 'ready'), 4000, 'ready')
  return events
}

/** The events about one workspace, as `type` or `type:reason`. */
function about(events: RegistryEvent[], cwd: string): string[] {
  const id = workspaceId(cwd)
  return events.flatMap((event) => {
    if (event.type === 'up') return event.entry.id === id ? ['up'] : []
    if (event.type === 'down') return event.entry.id === id ? [`down:${event.reason}`] : []
    if (event.type === 'change') return (event.entry ?? event.previous)?.id === id ? ['change'] : []
    return event.type === 'error' ? [`error:${event.error.message}`] : []
  })
}

async function startOwner(dir: string, cwd: string, name = 'owner'): Promise<{ child: ChildProcess; say(line: string): Promise<void> }> {
  const child = spawn(process.execPath, [join(FIXTURES, 'owner.mjs'), dir, cwd, name], { stdio: ['pipe', 'pipe', 'inherit'] })
  children.push(child)
  let out = ''
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()))
  await waitFor(() => out.startsWith('up\n'), 4000, 'the owner to write its entry')
  return {
    child,
    async say(line) {
      const before = out.split('done\n').length
      child.stdin?.write(`${line}\n`)
      await waitFor(() => out.split('done\n').length > before, 4000, `the owner to do ${line}`)
    },
  }
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

describe.each([{ polling: false }, { polling: true }])('watching a registry (polling: $polling)', ({ polling }) => {
  it('reports one up and one down (exited) for an owner that is SIGKILLed', async () => {
    const registry = new Registry({ dir: join(root, 'registry') })
    const events = await watch(registry, { intervalMs: 50, polling })
    const cwd = workspace('a')
    const owner = await startOwner(registry.dir, cwd)
    await waitFor(() => about(events, cwd).includes('up'), 4000, 'up')
    await kill(owner.child)
    await waitFor(() => about(events, cwd).includes('down:exited'), 4000, 'down')
    // A second owner's whole life spans later sweeps: by its down, a repeated event for the first would have shown.
    const later = workspace('b')
    const sentinel = await startOwner(registry.dir, later)
    await waitFor(() => about(events, later).includes('up'), 4000, 'sentinel up')
    await kill(sentinel.child)
    await waitFor(() => about(events, later).includes('down:exited'), 4000, 'sentinel down')
    expect(about(events, cwd)).toEqual(['up', 'down:exited'])
  })

  it('reports down (removed) when a live owner\'s entry is removed', async () => {
    const registry = new Registry({ dir: join(root, 'registry') })
    const events = await watch(registry, { intervalMs: 50, polling })
    const cwd = workspace('a')
    await startOwner(registry.dir, cwd)
    await waitFor(() => about(events, cwd).includes('up'), 4000, 'up')
    expect(await registry.remove(cwd)).toBe(true)
    await waitFor(() => about(events, cwd).length === 2, 4000, 'down')
    expect(about(events, cwd)).toEqual(['up', 'down:removed'])
  })

  it('sees the first up when started before the registry folder exists', async () => {
    const registry = new Registry({ dir: join(root, 'not', 'yet', 'registry') })
    const events = await watch(registry, { intervalMs: 50, polling })
    expect(events[0]).toEqual({ type: 'ready', entries: [] })
    const cwd = workspace('a')
    await startOwner(registry.dir, cwd)
    await waitFor(() => about(events, cwd).includes('up'), 4000, 'up')
    expect(about(events, cwd)).toEqual(['up'])
  })
})

describe('watching a registry', () => {
  it('reports rewrites by the same owner as changes, never up or down', async () => {
    const registry = new Registry({ dir: join(root, 'registry') })
    const cwd = workspace('a')
    const owner = await startOwner(registry.dir, cwd, 'first')
    const events = await watch(registry, { intervalMs: 50 })
    expect(events[0]).toMatchObject({ type: 'ready', entries: [{ status: 'alive', entry: { name: 'first', pid: owner.child.pid } }] })
    await owner.say('rename second')
    await waitFor(() => about(events, cwd).length === 1, 4000, 'first change')
    await owner.say('rename third')
    await waitFor(() => about(events, cwd).length === 2, 4000, 'second change')
    expect(about(events, cwd)).toEqual(['change', 'change'])
    const names = events.flatMap((event) => (event.type === 'change' ? [[event.previous?.name, event.entry?.name]] : []))
    expect(names).toEqual([['first', 'second'], ['second', 'third']])
  })

  it('reports a restart by another process as down then up, even from file events alone', async () => {
    const registry = new Registry({ dir: join(root, 'registry') })
    // A sweep interval far beyond the test: only the rewrite of the file can reveal the restart.
    const events = await watch(registry, { intervalMs: 600_000 })
    const cwd = workspace('a')
    const first = await startOwner(registry.dir, cwd)
    await waitFor(() => about(events, cwd).includes('up'), 4000, 'first up')
    await kill(first.child)
    const second = await startOwner(registry.dir, cwd)
    await waitFor(() => about(events, cwd).length === 3, 4000, 'the restart')
    expect(about(events, cwd)).toEqual(['up', 'down:exited', 'up'])
    const ups = events.flatMap((event) => (event.type === 'up' ? [event.entry.pid] : []))
    expect(ups).toEqual([first.child.pid, second.child.pid])
  })

  it('reports a live owner replaced in place as down (removed) then up', async () => {
    const registry = new Registry({ dir: join(root, 'registry') })
    const events = await watch(registry, { intervalMs: 600_000 })
    const cwd = workspace('a')
    await startOwner(registry.dir, cwd)
    await waitFor(() => about(events, cwd).includes('up'), 4000, 'first up')
    await startOwner(registry.dir, cwd)
    await waitFor(() => about(events, cwd).length === 3, 4000, 'the takeover')
    expect(about(events, cwd)).toEqual(['up', 'down:removed', 'up'])
  })

  it('reports idle rows as changes', async () => {
    const registry = new Registry({ dir: join(root, 'registry') })
    const events = await watch(registry, { intervalMs: 50 })
    const cwd = workspace('a')
    await registry.register(cwd)
    await waitFor(() => about(events, cwd).length === 1, 4000, 'the idle row')
    expect(events.at(-1)).toMatchObject({ type: 'change', previous: null, previousStatus: null, status: 'idle', entry: { pid: 0 } })
    await registry.remove(cwd)
    await waitFor(() => about(events, cwd).length === 2, 4000, 'its removal')
    expect(events.at(-1)).toMatchObject({ type: 'change', entry: null, status: null, previousStatus: 'idle' })
  })

  it('ignores temp, lock and quarantine names', async () => {
    const registry = new Registry({ dir: join(root, 'registry') })
    const cwd = workspace('a')
    const entry = await registry.write({ cwd })
    await registry.remove(cwd)
    const events = await watch(registry, { intervalMs: 600_000 })
    writeFileSync(join(registry.dir, `${entry.id}.json.tmp-123-1-abcd`), serializeEntry(entry))
    writeFileSync(join(registry.dir, `${entry.id}.lock`), '')
    mkdirSync(join(registry.dir, '.quarantine'))
    writeFileSync(join(registry.dir, '.quarantine', `${entry.id}.json`), serializeEntry(entry))
    const later = workspace('b')
    await registry.write({ cwd: later })
    await waitFor(() => about(events, later).includes('up'), 4000, 'sentinel up')
    expect(events.map((event) => event.type)).toEqual(['ready', 'up'])
  })

  it('is an async iterable that ends when its signal aborts', async () => {
    const registry = new Registry({ dir: join(root, 'registry') })
    const controller = new AbortController()
    const watcher = registry.watch({ intervalMs: 50, signal: controller.signal })
    const cwd = workspace('a')
    const seen: string[] = []
    for await (const event of watcher) {
      seen.push(event.type)
      if (event.type === 'ready') await registry.write({ cwd })
      if (event.type === 'up') controller.abort()
    }
    expect(seen).toEqual(['ready', 'up'])
  })

  it('reports running entries as up before ready with emitExisting', async () => {
    const registry = new Registry({ dir: join(root, 'registry') })
    const cwd = workspace('a')
    await registry.write({ cwd })
    await registry.register(workspace('b'))
    const events = await watch(registry, { emitExisting: true })
    expect(events.map((event) => event.type)).toEqual(['up', 'ready'])
    expect(events[1]).toMatchObject({ type: 'ready', entries: [{ status: 'alive' }, { status: 'idle' }] })
  })

  it.each(['close', 'polling', 'iterate'])('leaves no handles behind once closed (%s)', async (mode) => {
    const child = spawn(process.execPath, [join(FIXTURES, 'watch-close.mjs'), root, mode], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    let out = ''
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()))
    const code = await new Promise((resolve) => child.once('exit', resolve))
    expect(out).toBe('closed\n')
    expect(code).toBe(0)
  })
})
