import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:http'
import { describe, expect, it } from 'vitest'
import { RegistryError } from '../src/errors.js'
import { workspaceId } from '../src/paths.js'
import { Registry } from '../src/registry.js'
import { deadPid, exited, fixture, sandbox, sleeper, stdoutOf, tempDir, waitFor, writeDeadEntry, filesIn } from './helpers.js'

describe('write', () => {
  it('creates the folder 0700 and a 0600 pretty JSON file named by the workspace id', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir: join(dir, 'nested') })
    const entry = await registry.write({ cwd: ws, url: 'http://127.0.0.1:9', meta: { team: 'a' } })
    const path = join(dir, 'nested', `${workspaceId(ws)}.json`)
    expect(registry.entryPath(ws)).toBe(path)
    expect(statSync(join(dir, 'nested')).mode & 0o777).toBe(0o700)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(readFileSync(path, 'utf8')).toBe(`${JSON.stringify(entry, null, 2)}\n`)
    expect(entry).toMatchObject({ version: 1, id: workspaceId(ws), cwd: ws, name: 'ws', pid: process.pid, host: hostname(), url: 'http://127.0.0.1:9', meta: { team: 'a' } })
    expect(entry.startedAt).toBe(entry.updatedAt)
  })

  it('keeps startedAt when the same process rewrites, and resets it for a new owner', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const first = await registry.write({ cwd: ws })
    await waitFor(() => new Date().toISOString() !== first.updatedAt)
    const second = await registry.write({ cwd: ws, name: 'renamed' })
    expect(second.startedAt).toBe(first.startedAt)
    expect(second.updatedAt).not.toBe(first.updatedAt)
    const other = sleeper()
    const third = await registry.write({ cwd: ws, pid: other.pid })
    expect(third.startedAt).not.toBe(first.startedAt)
  })

  it('preserves fields written by a newer version on rewrite', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    const path = registry.entryPath(ws)
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), fromTheFuture: [1, 2] }))
    await registry.write({ cwd: ws, url: 'http://x' })
    expect(JSON.parse(readFileSync(path, 'utf8')).fromTheFuture).toEqual([1, 2])
  })

  it('one workspace for a symlink, a relative path and a trailing slash', async () => {
    const { root, dir, ws } = sandbox()
    symlinkSync(ws, join(root, 'link'))
    const registry = new Registry({ dir })
    await registry.write({ cwd: join(root, 'link') })
    await registry.write({ cwd: `${ws}/` })
    expect((await registry.list()).map((entry) => entry.cwd)).toEqual([ws])
  })

  it('moves a corrupt file in the way to .quarantine/ instead of writing over it', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    mkdirSync(dir, { mode: 0o700 })
    writeFileSync(registry.entryPath(ws), '{ torn', { mode: 0o600 })
    const entry = await registry.write({ cwd: ws })
    expect(await registry.read(ws)).toEqual(entry)
    const kept = readdirSync(join(dir, '.quarantine'))
    expect(kept).toHaveLength(1)
    expect(readFileSync(join(dir, '.quarantine', kept[0] as string), 'utf8')).toBe('{ torn')
  })

  it('refuses bad input with E_INVALID and writes nothing', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await expect(registry.write({ cwd: ws, pid: -3 })).rejects.toMatchObject({ code: 'E_INVALID' })
    await expect(registry.write({ cwd: ws, pid: await deadPid() })).rejects.toThrow(/not running/)
    await expect(registry.write({ cwd: ws, meta: [] as never })).rejects.toBeInstanceOf(RegistryError)
    expect(existsSync(dir)).toBe(false)
  })
})

describe('register', () => {
  it('writes an idle row, and returns a live entry untouched', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const idle = await registry.register(ws, 'my ws')
    expect(idle).toMatchObject({ pid: 0, name: 'my ws', pidStartTime: null })
    const live = await registry.write({ cwd: ws })
    const bytes = readFileSync(registry.entryPath(ws))
    expect(await registry.register(ws, 'other')).toEqual(live)
    expect(readFileSync(registry.entryPath(ws))).toEqual(bytes)
  })

  it('replaces a dead entry with an idle row', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await writeDeadEntry(registry, ws)
    expect((await registry.register(ws)).pid).toBe(0)
  })
})

describe('read', () => {
  it('returns the entry, or undefined for an unknown workspace', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    expect(await registry.read(ws)).toBeUndefined()
    const entry = await registry.write({ cwd: ws })
    expect(await registry.read(ws)).toEqual(entry)
    expect(await registry.readId(entry.id)).toEqual(entry)
    await expect(registry.readId('../etc/passwd')).rejects.toMatchObject({ code: 'E_INVALID' })
  })

  it('does not scan the folder when the canonical file holds a current entry', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const entry = await registry.write({ cwd: ws })
    // A folder that may be searched but not listed: opening <id>.json by name works, a readdir would fail.
    const result = await asUnprivileged(['read', dir, ws], dir, { root: 0o711, self: 0o100 })
    expect(result).toEqual({ result: entry })
  })
})

describe('list', () => {
  it('sorts by name then cwd and leaves dead entries out, deleting them', async () => {
    const { root, dir } = sandbox()
    const registry = new Registry({ dir })
    const cwds = ['c', 'a2', 'a1', 'b'].map((name) => join(root, name))
    for (const cwd of cwds) mkdirSync(cwd)
    await registry.write({ cwd: cwds[0] as string, name: 'b-name' })
    await registry.write({ cwd: cwds[1] as string, name: 'a-name' })
    await registry.write({ cwd: cwds[2] as string, name: 'a-name' })
    const child = sleeper()
    await registry.write({ cwd: cwds[3] as string, pid: child.pid, name: 'dead' })
    child.kill('SIGKILL')
    await exited(child)
    expect((await registry.list({ prune: false })).map((entry) => entry.name)).toEqual(['a-name', 'a-name', 'b-name'])
    expect(readdirSync(dir)).toHaveLength(4) // prune:false changed nothing
    expect((await registry.list()).map((entry) => entry.cwd)).toEqual([cwds[2], cwds[1], cwds[0]])
    expect(filesIn(dir)).toHaveLength(3)
  })

  it('returns [] for a registry folder that does not exist yet, creating nothing', async () => {
    const { dir } = sandbox()
    expect(await new Registry({ dir }).list()).toEqual([])
    expect(existsSync(dir)).toBe(false)
  })

  it('skips corrupt files without failing and never deletes them', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    writeFileSync(join(dir, 'aaaaaaaaaaaaaaaa.json'), '{ torn', { mode: 0o600 })
    writeFileSync(join(dir, 'bbbbbbbbbbbbbbbb.json'), JSON.stringify({ cwd: '/x', pid: 'NaN' }), { mode: 0o600 })
    symlinkSync('/etc/passwd', join(dir, 'cccccccccccccccc.json'))
    writeFileSync(join(dir, 'README.txt'), 'ignored')
    expect(await registry.list()).toHaveLength(1)
    const corrupt = (await registry.listInfo({ all: true })).filter((row) => row.status === 'corrupt')
    expect(corrupt.map((row) => row.id).sort()).toEqual(['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb', 'cccccccccccccccc'])
    expect(readdirSync(dir)).toHaveLength(5)
  })

  it('finds entries in a folder whose path holds glob characters', async () => {
    const root = tempDir()
    const dir = join(root, '[weird] *dir?')
    const ws = join(root, 'w[1]')
    mkdirSync(ws)
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    expect((await registry.list()).map((entry) => entry.cwd)).toEqual([ws])
  })

  it('still lists a read-only folder, filtering dead entries without deleting them', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await writeDeadEntry(registry, ws)
    const before = readdirSync(dir)
    expect(await asUnprivileged(['list', dir], dir, { root: 0o755, self: 0o500 })).toEqual({ result: [] })
    expect(readdirSync(dir)).toEqual(before)
  })})

describe('listInfo', () => {
  it('adds status, reason, path and mtime; all:true adds dead rows', async () => {
    const { root, dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    const deadWs = join(root, 'dead')
    mkdirSync(deadWs)
    await writeDeadEntry(registry, deadWs)
    const rows = await registry.listInfo({ all: true, prune: false })
    expect(rows.map((row) => row.status)).toEqual(['alive', 'dead'])
    const [alive] = rows
    expect(alive).toMatchObject({ cwd: ws, status: 'alive', reason: null, path: registry.entryPath(ws) })
    expect(alive && Date.parse(alive.mtime as string)).toBeGreaterThan(0)
  })

  it('probes urls in parallel without letting health decide pruning', async () => {
    const { root, dir, ws } = sandbox()
    const server = createServer((_, res) => res.writeHead(503).end())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    try {
      const registry = new Registry({ dir })
      await registry.write({ cwd: ws, url: `http://127.0.0.1:${port}/` })
      const other = join(root, 'other')
      mkdirSync(other)
      await registry.write({ cwd: other, url: `http://127.0.0.1:${await closedPort()}/` })
      const rows = await registry.listInfo({ probe: true })
      expect(rows.map((row) => [row.name, row.health])).toEqual([
        ['other', 'down'],
        ['ws', 'up'],
      ])
      expect(await registry.list()).toHaveLength(2)
    } finally {
      server.close()
    }
  })
})

async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('remove', () => {
  it('removes the entry and is idempotent', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    expect(await registry.remove(ws)).toBe(true)
    expect(await registry.remove(ws)).toBe(false)
    expect(filesIn(dir)).toEqual([])
  })

  it('with ifPid, removes only an entry recorded for that pid', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    expect(await registry.remove(ws, { ifPid: process.pid + 1 })).toBe(false)
    expect(await registry.read(ws)).toBeDefined()
    expect(await registry.remove(ws, { ifPid: process.pid })).toBe(true)
  })

  it('also removes legacy files of the workspace', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    const legacy = join(dir, `${workspaceId(ws)}-${process.pid}.json`)
    writeFileSync(legacy, JSON.stringify({ cwd: ws, pid: process.pid, startedAt: new Date().toISOString() }))
    expect(await registry.remove(ws)).toBe(true)
    expect(filesIn(dir)).toEqual([])
  })
})

describe('prune', () => {
  it('reports dead entries with reasons, quarantines corrupt files and sweeps old temp files', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await writeDeadEntry(registry, ws)
    writeFileSync(join(dir, 'aaaaaaaaaaaaaaaa.json'), 'garbage', { mode: 0o600 })
    const temp = join(dir, 'bbbbbbbbbbbbbbbb.json.tmp-1-2-x')
    writeFileSync(temp, 'partial')
    const fresh = join(dir, 'cccccccccccccccc.json.tmp-1-2-x')
    writeFileSync(fresh, 'in flight')
    const old = new Date(Date.now() - 120_000)
    utimesSync(temp, old, old)

    const before = readdirSync(dir).sort()
    const dry = await registry.prune({ dryRun: true })
    expect(readdirSync(dir).sort()).toEqual(before)
    const report = await registry.prune()
    expect(report).toEqual(dry.map((item) => (item.reason === 'corrupt' ? { ...item, quarantinedTo: expect.stringContaining('.quarantine') } : item)))
    expect(report.map((item) => item.reason).sort()).toEqual(['corrupt', 'exited', 'stale-temp'])
    expect(report.find((item) => item.reason === 'exited')).toMatchObject({ id: workspaceId(ws), cwd: ws, path: registry.entryPath(ws) })
    expect(filesIn(dir).sort()).toEqual(['.quarantine', 'cccccccccccccccc.json.tmp-1-2-x'])
    expect(readdirSync(join(dir, '.quarantine'))).toHaveLength(1)
  })
})

describe('folder safety', () => {
  it('refuses a symlinked, group/world-writable or foreign-owned folder with E_UNSAFE_DIR', async () => {
    const { root, dir, ws } = sandbox()
    mkdirSync(dir, { mode: 0o700 })
    const link = join(root, 'link')
    symlinkSync(dir, link)
    await expect(new Registry({ dir: link }).list()).rejects.toMatchObject({ code: 'E_UNSAFE_DIR', message: /symlink/ })
    chmodSync(dir, 0o777)
    await expect(new Registry({ dir }).write({ cwd: ws })).rejects.toMatchObject({ code: 'E_UNSAFE_DIR', message: /chmod 700/ })
    chmodSync(dir, 0o700)
    if (process.getuid?.() === 0) {
      const { chownSync } = await import('node:fs')
      chownSync(dir, 65534, 65534)
      await expect(new Registry({ dir }).read(ws)).rejects.toMatchObject({ code: 'E_UNSAFE_DIR', message: /owned by uid 65534/ })
    }
  })
})

describe('races with real processes', () => {
  it('two processes writing 1,000 distinct workspaces each lose nothing', async () => {
    const { root, dir } = sandbox()
    const a = fixture('writer.mjs', ['many', dir, root, 'a', '1000', String(process.pid)])
    const b = fixture('writer.mjs', ['many', dir, root, 'b', '1000', String(process.pid)])
    expect((await exited(a)).code).toBe(0)
    expect((await exited(b)).code).toBe(0)
    const entries = await new Registry({ dir }).list()
    expect(entries).toHaveLength(2000)
    expect(new Set(entries.map((entry) => entry.cwd)).size).toBe(2000)
  })

  it('a reader racing two writers of one workspace never sees a torn entry', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    const path = registry.entryPath(ws)
    const writers = [fixture('writer.mjs', ['rewrite', dir, ws, '150', 'one']), fixture('writer.mjs', ['rewrite', dir, ws, '150', 'two'])]
    const done = Promise.all(writers.map(exited))
    let finished = false
    void done.then(() => (finished = true))
    let reads = 0
    while (!finished) {
      const entry = JSON.parse(readFileSync(path, 'utf8'))
      expect(entry.meta === undefined || entry.meta.blob.length === 200_000).toBe(true)
      expect(await registry.read(ws)).toBeDefined()
      reads++
      await new Promise((resolve) => setImmediate(resolve))
    }
    expect((await done).map((result) => result.code)).toEqual([0, 0])
    expect(reads).toBeGreaterThan(10)
  })

  it('a pruner racing a writer never deletes the live entry (compare-and-delete)', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    // A dead version of the same workspace: a real process's identity, after it exited.
    const dead = sleeper()
    const deadEntry = await registry.write({ cwd: ws, pid: dead.pid })
    dead.kill('SIGKILL')
    await exited(dead)
    const deadFile = join(dir, '..', 'dead.json')
    writeFileSync(deadFile, `${JSON.stringify(deadEntry, null, 2)}\n`)
    const listers = [fixture('lister.mjs', [dir]), fixture('lister.mjs', [dir, 'prune'])]
    const outs = listers.map(stdoutOf)
    await waitFor(() => outs.every((out) => out().includes('ready')))
    const writer = fixture('writer.mjs', ['flip', dir, ws, deadFile, '300'])
    const result = stdoutOf(writer)
    expect((await exited(writer)).code).toBe(0)
    for (const lister of listers) lister.kill('SIGTERM')
    await Promise.all(listers.map(exited))
    const runs = outs.map((out) => Number(out().split('\n')[1]))
    expect(runs.every((n) => n > 0)).toBe(true)
    expect(JSON.parse(result())).toEqual({ lost: 0 })
  })
})

describe('a cleanup killed midway', () => {
  it('puts back a live entry a killed compare-and-delete had taken aside', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const entry = await registry.write({ cwd: ws })
    const { renameSync } = await import('node:fs')
    const aside = `${registry.entryPath(ws)}.cad-${await deadPid()}-1-abcdef01`
    renameSync(registry.entryPath(ws), aside)
    const dry = await registry.prune({ dryRun: true })
    expect(dry).toEqual([{ id: entry.id, cwd: ws, path: registry.entryPath(ws), reason: 'restored' }])
    expect(existsSync(registry.entryPath(ws))).toBe(false)
    expect(await registry.list()).toEqual([entry])
    expect(readdirSync(dir)).toEqual([`${entry.id}.json`])
  })

  it('leaves the aside of a deleter that still runs alone, and drops one older than a newer write', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    const { copyFileSync } = await import('node:fs')
    const running = `${registry.entryPath(ws)}.cad-${sleeper().pid}-1-abcdef01`
    copyFileSync(registry.entryPath(ws), running)
    const old = new Date(Date.now() - 3_600_000)
    utimesSync(running, old, old)
    expect(await registry.prune()).toEqual([])
    expect(existsSync(running)).toBe(true)

    const abandoned = `${registry.entryPath(ws)}.cad-${await deadPid()}-1-abcdef01`
    copyFileSync(registry.entryPath(ws), abandoned)
    const newer = await registry.write({ cwd: ws, name: 'newer' })
    expect((await registry.prune()).map((item) => item.reason)).toEqual(['stale-temp'])
    expect(existsSync(abandoned)).toBe(false)
    expect(await registry.read(ws)).toEqual(newer)
  })
})

/**
 * Run a registry operation in a child that may not write (or list) `dir`: as root, a child of uid 65534 on a
 * root-owned folder of mode `root`; otherwise a child of this user on a folder of mode `self`. Entry files are
 * made readable to the child. Resolves to what the child printed.
 */
async function asUnprivileged(args: string[], dir: string, modes: { root: number; self: number }): Promise<unknown> {
  const asRoot = process.getuid?.() === 0
  for (const name of readdirSync(dir)) chmodSync(join(dir, name), 0o644)
  chmodSync(dir, asRoot ? modes.root : modes.self)
  try {
    const child = fixture('registry-op.mjs', args, asRoot ? { uid: 65534, gid: 65534 } : {})
    const out = stdoutOf(child)
    expect((await exited(child)).code).toBe(0)
    return JSON.parse(out())
  } finally {
    chmodSync(dir, 0o700)
  }
}
