import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Registry, RegistryError } from '../src/index.js'
import { running, sandbox, start } from './children.js'

async function failure(promise: Promise<unknown>): Promise<RegistryError> {
  const error = await promise.then(() => undefined, (error: unknown) => error)
  expect(error).toBeInstanceOf(RegistryError)
  return error as RegistryError
}

describe('reap', () => {
  it('ends a process that ignores SIGTERM with SIGKILL after the grace, then removes the entry', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const stubborn = start('stubborn.mjs', [])
    await stubborn.next()
    await registry.write({ cwd, pid: stubborn.pid })
    const result = await registry.reap(cwd, { graceMs: 150 })
    expect(result).toMatchObject({ outcome: 'killed', pid: stubborn.pid, removed: true })
    expect(await stubborn.ended).toEqual({ code: null, signal: 'SIGKILL' })
    expect(existsSync(registry.entryPath(cwd))).toBe(false)
  })

  it('reports the entry removed when the exit cleanup of the process removed it first', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const claimer = start('claimer.mjs', [dir, cwd, 'wait'])
    const { claimed } = (await claimer.next()) as { claimed: number }
    const entry = await registry.read(cwd)
    expect(entry?.pid).toBe(claimed)
    expect(await registry.reap(entry as NonNullable<typeof entry>, { graceMs: 5000 })).toMatchObject({ outcome: 'terminated', removed: true })
    expect(existsSync(registry.entryPath(cwd))).toBe(false)
  })

  it('ends a well-behaved process with SIGTERM alone', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const child = start('child.mjs', [])
    await child.next()
    const entry = await registry.write({ cwd, pid: child.pid })
    expect(await registry.reap(entry, { graceMs: 5000 })).toMatchObject({ outcome: 'terminated', removed: true })
    expect(await child.next()).toEqual({ got: 'SIGTERM' })
    expect((await child.ended).code).toBe(55)
  })

  it('never signals a live impostor whose start identity does not match, but drops the stale entry', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const impostor = start('child.mjs', [])
    await impostor.next()
    await registry.write({ cwd, pid: impostor.pid })
    const path = registry.entryPath(cwd)
    const recorded = JSON.parse(readFileSync(path, 'utf8'))
    writeFileSync(path, `${JSON.stringify({ ...recorded, pidStartTime: '1' }, null, 2)}\n`, { mode: 0o600 })
    const stale = { ...recorded, pidStartTime: '1' }
    expect(await registry.reap(stale, { graceMs: 0 })).toMatchObject({ outcome: 'identity-mismatch', removed: true })
    expect(existsSync(path)).toBe(false)
    // Still running and never signalled: it exits with the code we ask for, not the one a signal would give.
    expect(running(impostor.pid)).toBe(true)
    impostor.process.stdin?.write('exit 7\n')
    expect(await impostor.ended).toEqual({ code: 7, signal: null })
  })

  it('reaps a whole process group when asked', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const leader = start('stubborn.mjs', ['group', '2'], { detached: true })
    const { children } = (await leader.next()) as { children: number[] }
    expect(children).toHaveLength(2)
    await registry.write({ cwd, pid: leader.pid })
    expect(await registry.reap(cwd, { graceMs: 150, signalGroup: true })).toMatchObject({ outcome: 'killed', removed: true })
    for (const pid of [leader.pid, ...children]) expect(running(pid)).toBe(false)
  })

  it('refuses to signal the group of a process that does not lead one', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const child = start('child.mjs', [])
    await child.next()
    await registry.write({ cwd, pid: child.pid })
    expect((await failure(registry.reap(cwd, { signalGroup: true }))).code).toBe('E_INVALID')
    expect(running(child.pid)).toBe(true)
    expect(existsSync(registry.entryPath(cwd))).toBe(true)
  })

  it('never signals itself or pid 1, and keeps their entries', async () => {
    const { dir, cwd, root } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd, pid: process.pid })
    expect((await failure(registry.reap(cwd, { graceMs: 0 }))).code).toBe('E_INVALID')
    expect(existsSync(registry.entryPath(cwd))).toBe(true)
    const other = join(root, 'init')
    mkdirSync(other)
    await registry.write({ cwd: other, pid: 1 })
    expect((await failure(registry.reap(other, { graceMs: 0 }))).code).toBe('E_INVALID')
    expect(existsSync(registry.entryPath(other))).toBe(true)
  })

  it('reports an exited owner as already gone', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const child = start('child.mjs', [])
    await child.next()
    const entry = await registry.write({ cwd, pid: child.pid })
    child.process.stdin?.write('exit 0\n')
    await child.ended
    expect(await registry.reap(entry)).toMatchObject({ outcome: 'already-gone', removed: true })
  })

  it('changes nothing with dryRun', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const child = start('child.mjs', [])
    await child.next()
    await registry.write({ cwd, pid: child.pid })
    expect(await registry.reap(cwd, { dryRun: true })).toMatchObject({ outcome: 'terminated', removed: false, dryRun: true })
    expect(running(child.pid)).toBe(true)
    expect(existsSync(registry.entryPath(cwd))).toBe(true)
  })

  it('throws E_NOT_FOUND for a workspace without an entry', async () => {
    const { dir, cwd } = sandbox()
    expect((await failure(new Registry({ dir }).reap(cwd))).code).toBe('E_NOT_FOUND')
  })
})

describe('orphans', () => {
  const saved = process.env.XDG_DATA_HOME
  afterEach(() => {
    if (saved === undefined) delete process.env.XDG_DATA_HOME
    else process.env.XDG_DATA_HOME = saved
  })

  it('lists live owners whose folder is missing, in the Trash (XDG_DATA_HOME), or lacks the marker', async () => {
    const { dir, root } = sandbox()
    process.env.XDG_DATA_HOME = join(root, 'data')
    const owner = start('child.mjs', [])
    await owner.next()
    const registry = new Registry({ dir, marker: '.git' })
    const make = (name: string, marker: boolean) => {
      const path = join(root, name)
      mkdirSync(path, { recursive: true })
      if (marker) mkdirSync(join(path, '.git'))
      return path
    }
    const healthy = make('healthy', true)
    const deleted = make('deleted', true)
    const trashed = make('trashed', true)
    const unmarked = make('unmarked', false)
    for (const cwd of [healthy, deleted, trashed, unmarked]) await registry.write({ cwd, pid: owner.pid })
    rmSync(deleted, { recursive: true })
    mkdirSync(join(root, 'data', 'Trash', 'files'), { recursive: true })
    renameSync(trashed, join(root, 'data', 'Trash', 'files', 'trashed'))
    // The entry keeps the old path; a Trash copy of it is what a user would see, so record it there.
    await registry.write({ cwd: join(root, 'data', 'Trash', 'files', 'trashed'), pid: owner.pid })
    const reasons = (await registry.orphans()).map((row) => [row.cwd, row.reason]).sort()
    expect(reasons).toEqual(
      [
        [deleted, 'cwd-missing'],
        [trashed, 'cwd-missing'],
        [join(root, 'data', 'Trash', 'files', 'trashed'), 'in-trash'],
        [unmarked, 'marker-missing'],
      ].sort(),
    )
    expect(running(owner.pid)).toBe(true)
  })
})
