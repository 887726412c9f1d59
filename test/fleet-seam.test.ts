import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Registry, fileTreeStore } from '../src/index.js'
import { sandbox } from './helpers.js'

describe('the file tree as an EntryStore', () => {
  it('reads, writes and lists through the registry folder', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const store = fileTreeStore(registry)
    const entry = await registry.write({ cwd: ws })
    expect(store.location).toBe(dir)
    expect((await store.read(entry.id))?.entry).toEqual(entry)
    const renamed = await store.write({ ...entry, name: 'renamed' })
    expect((await registry.read(ws))?.name).toBe('renamed')
    expect((await store.list()).map((row) => row.version)).toEqual([renamed.version])
  })

  it('compare-and-delete keeps a newer write and removes the judged one', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const store = fileTreeStore(registry)
    const first = await store.write(await registry.write({ cwd: ws }))
    await store.write({ ...first.entry, name: 'newer' })
    expect(await store.compareAndDelete(first.entry.id, first.version)).toBe('changed')
    const current = await store.read(first.entry.id)
    expect(current?.entry.name).toBe('newer')
    expect(await store.compareAndDelete(first.entry.id, current?.version as string)).toBe('deleted')
    expect(await store.compareAndDelete(first.entry.id, current?.version as string)).toBe('missing')
  })

  it('watches with the registry watcher', async () => {
    const { dir, ws } = sandbox()
    mkdirSync(join(ws, 'x'))
    const watcher = fileTreeStore(new Registry({ dir })).watch()
    const iterator = watcher[Symbol.asyncIterator]()
    expect((await iterator.next()).value).toMatchObject({ type: 'ready', entries: [] })
    await new Registry({ dir }).write({ cwd: join(ws, 'x') })
    expect((await iterator.next()).value).toMatchObject({ type: 'up' })
    await watcher.close()
  })
})
