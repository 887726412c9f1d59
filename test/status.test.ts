import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { Entry } from '../src/entry.js'
import { Registry } from '../src/registry.js'
import { workspaceId } from '../src/paths.js'
import { classify } from '../src/status.js'
import { FIXTURES, deadPid, exited, sandbox, sleeper, stdoutOf, track, waitFor, writeDeadEntry } from './helpers.js'

const linux = process.platform === 'linux'

/** Rewrite an entry file by hand, as another tool or a hostile writer could. */
function tamper(registry: Registry, cwd: string, change: (entry: Record<string, unknown>) => void): void {
  const path = registry.entryPath(cwd)
  const entry = JSON.parse(readFileSync(path, 'utf8'))
  change(entry)
  writeFileSync(path, `${JSON.stringify(entry, null, 2)}\n`, { mode: 0o600 })
}

async function statusOf(registry: Registry, cwd: string): Promise<{ status: string; reason: string | null } | undefined> {
  const row = (await registry.listInfo({ prune: false, all: true })).find((info) => info.status !== 'corrupt' && info.cwd === cwd)
  return row && row.status !== 'corrupt' ? { status: row.status, reason: row.reason } : undefined
}

describe('the liveness truth table', () => {
  it('idle: pid 0 and the folder exists', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.register(ws)
    expect(await statusOf(registry, ws)).toEqual({ status: 'idle', reason: null })
  })

  it('gone: pid 0 and the folder is missing; list deletes it', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.register(ws)
    rmSync(ws, { recursive: true })
    expect(await statusOf(registry, ws)).toEqual({ status: 'gone', reason: 'cwd-missing' })
    expect(await registry.list()).toEqual([])
    expect(existsSync(registry.entryPath(ws))).toBe(false)
  })

  it('alive: a live owner with its recorded start identity', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const child = sleeper()
    await registry.write({ cwd: ws, pid: child.pid })
    expect(await statusOf(registry, ws)).toEqual({ status: 'alive', reason: null })
  })

  it('orphan: a live process whose folder was deleted is kept, not pruned', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const child = sleeper({ cwd: ws })
    await registry.write({ cwd: ws, pid: child.pid })
    rmSync(ws, { recursive: true })
    expect(await statusOf(registry, ws)).toEqual({ status: 'orphan', reason: 'cwd-missing' })
    expect((await registry.list()).map((entry) => entry.pid)).toEqual([child.pid])
    expect(existsSync(registry.entryPath(ws))).toBe(true)
  })

  it('orphan: a workspace whose configured marker file is missing', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir, marker: '.git' })
    await registry.write({ cwd: ws })
    expect(await statusOf(registry, ws)).toEqual({ status: 'orphan', reason: 'marker-missing' })
    mkdirSync(join(ws, '.git'))
    expect(await statusOf(registry, ws)).toEqual({ status: 'alive', reason: null })
  })

  it('orphan: a workspace recorded inside the Trash of $XDG_DATA_HOME', async () => {
    const { root, dir } = sandbox()
    const trashed = join(root, 'data', 'Trash', 'files', 'ws')
    mkdirSync(trashed, { recursive: true })
    const original = process.env.XDG_DATA_HOME
    process.env.XDG_DATA_HOME = join(root, 'data')
    try {
      const registry = new Registry({ dir })
      await registry.write({ cwd: trashed })
      expect(await statusOf(registry, trashed)).toEqual({ status: 'orphan', reason: 'in-trash' })
    } finally {
      if (original === undefined) delete process.env.XDG_DATA_HOME
      else process.env.XDG_DATA_HOME = original
    }
  })

  it('dead: the owner exited; list deletes the entry', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await writeDeadEntry(registry, ws)
    expect(await statusOf(registry, ws)).toEqual({ status: 'dead', reason: 'exited' })
    expect(await registry.read(ws)).toBeUndefined()
    expect(existsSync(registry.entryPath(ws))).toBe(false)
  })

  it('dead: a live impostor holding the pid with another start identity (PID reuse)', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const impostor = sleeper()
    await registry.write({ cwd: ws, pid: impostor.pid })
    tamper(registry, ws, (entry) => (entry.pidStartTime = String(Number(entry.pidStartTime) + 1)))
    expect(await statusOf(registry, ws)).toEqual({ status: 'dead', reason: 'pid-reused' })
    expect(impostor.exitCode).toBeNull()
  })

  it('dead: written before a reboot (reboot mocked by a different boot id in the file)', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    tamper(registry, ws, (entry) => (entry.bootId = '00000000-0000-0000-0000-000000000000'))
    expect(await statusOf(registry, ws)).toEqual({ status: 'dead', reason: 'rebooted' })
  })

  it('dead: a zombie owner', async () => {
    if (!linux) return
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    // After the exec, `sleep 30` is the parent of the background sleep and never reaps it once killed.
    const parent = track(spawn('sh', ['-c', 'sleep 30 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] }))
    const out = stdoutOf(parent)
    const pid = Number(await waitFor(() => out().trim()))
    await registry.write({ cwd: ws, pid })
    await waitFor(() => readFileSync(`/proc/${parent.pid}/cmdline`, 'latin1').startsWith('sleep'), 5000, 'exec')
    process.kill(pid, 'SIGKILL')
    await waitFor(async () => (await statusOf(registry, ws))?.reason === 'zombie', 5000, 'zombie status')
  })

  it('dead: a legacy entry without start identity whose pid started well after the entry was written', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const child = sleeper()
    await registry.write({ cwd: ws, pid: child.pid })
    tamper(registry, ws, (entry) => {
      entry.pidStartTime = null
      entry.updatedAt = entry.startedAt = new Date(Date.now() - 3_600_000).toISOString()
    })
    // mtime also counts as "last written": push it back too.
    const { utimesSync } = await import('node:fs')
    const old = new Date(Date.now() - 3_600_000)
    utimesSync(registry.entryPath(ws), old, old)
    expect(await statusOf(registry, ws)).toEqual({ status: linux ? 'dead' : 'alive', reason: linux ? 'pid-reused' : null })
  })

  it('alive: a legacy entry without start identity written after its owner started', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    tamper(registry, ws, (entry) => (entry.pidStartTime = null))
    expect(await statusOf(registry, ws)).toEqual({ status: 'alive', reason: null })
  })

  it('unknown: written on another host — never pruned, even with a dead pid', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const child = sleeper()
    await registry.write({ cwd: ws, pid: child.pid })
    tamper(registry, ws, (entry) => (entry.host = 'elsewhere.example'))
    child.kill('SIGKILL')
    await exited(child)
    expect(await statusOf(registry, ws)).toEqual({ status: 'unknown', reason: 'foreign-host' })
    expect(await registry.list()).toHaveLength(1)
    expect(await registry.prune()).toEqual([])
  })

  it('unknown: written from another PID namespace', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    tamper(registry, ws, (entry) => (entry.pidNamespace = '1'))
    if (linux) expect(await statusOf(registry, ws)).toEqual({ status: 'unknown', reason: 'foreign-pid-namespace' })
  })

  it('classify() judges a single entry the same way', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const entry: Entry = await registry.write({ cwd: ws })
    expect(classify(entry)).toEqual({ status: 'alive', reason: null })
    expect(classify({ ...entry, pid: await deadPid() }).status).toBe('dead')
  })

  it("alive: another user's live process (EPERM means it exists)", async () => {
    if (process.getuid?.() !== 0) {
      console.warn('skipped: needs root to spawn a process as another user')
      return
    }
    const { root, dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws }) // owned by root (this process)
    chmodSync(dir, 0o755)
    chmodSync(registry.entryPath(ws), 0o644)
    chmodSync(root, 0o755)
    const child = track(spawn(process.execPath, [join(FIXTURES, 'judge.mjs'), dir, String(process.pid)], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] }))
    const out = stdoutOf(child)
    expect((await exited(child)).code).toBe(0)
    const result = JSON.parse(out())
    expect(result.uid).toBe(65534)
    expect(result.statuses).toEqual(['alive'])
    expect(result.linux).toBe('running')
    expect(result.portable).toBe('running') // kill(pid, 0) failed with EPERM, and that means "exists"
  })
})

describe('heartbeat leases in the truth table', () => {
  const ago = (ms: number) => new Date(Date.now() - ms).toISOString()

  it('a lapsed lease decides an entry nothing here can judge only after the grace: unknown, then dead, both lease-expired', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir, leaseGraceMs: 60_000 })
    await registry.write({ cwd: ws })
    tamper(registry, ws, (entry) => {
      entry.host = 'another-host'
      entry.leaseUntil = ago(-60_000)
    })
    expect(await statusOf(registry, ws)).toEqual({ status: 'unknown', reason: 'foreign-host' })
    tamper(registry, ws, (entry) => (entry.leaseUntil = ago(1000)))
    expect(await statusOf(registry, ws)).toEqual({ status: 'unknown', reason: 'lease-expired' })
    expect(await registry.list()).toHaveLength(1)
    tamper(registry, ws, (entry) => (entry.leaseUntil = ago(61_000)))
    expect(await statusOf(registry, ws)).toEqual({ status: 'dead', reason: 'lease-expired' })
    expect(await registry.list()).toEqual([])
    expect(existsSync(registry.entryPath(ws))).toBe(false)
  })

  it('the kernel beats the clock: a live local owner with a long-lapsed lease is kept, and a dead one with a fresh lease is dead', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir, leaseGraceMs: 0 })
    await registry.write({ cwd: ws })
    tamper(registry, ws, (entry) => (entry.leaseUntil = ago(3_600_000)))
    expect(await statusOf(registry, ws)).toEqual({ status: 'alive', reason: 'lease-expired' })
    expect(await registry.list()).toHaveLength(1)
    tamper(registry, ws, (entry) => {
      entry.leaseUntil = ago(-3_600_000)
      entry.pidStartTime = '1'
    })
    expect(await statusOf(registry, ws)).toEqual({ status: 'dead', reason: 'pid-reused' })
  })

  it('a lapsed lease never decides an owner known alive whose cwd is only unverifiable (a lossy name)', async () => {
    const { dir, ws, root } = sandbox()
    const registry = new Registry({ dir, leaseGraceMs: 0 })
    const lossy = join(root, 'caf\uFFFD')
    await registry.write({ cwd: ws })
    // Planted under the lossy name's own id, as an older writer would have recorded it.
    const entry = JSON.parse(readFileSync(registry.entryPath(ws), 'utf8'))
    rmSync(registry.entryPath(ws))
    Object.assign(entry, { cwd: lossy, id: workspaceId(lossy), leaseUntil: ago(3_600_000) })
    writeFileSync(join(dir, `${entry.id}.json`), JSON.stringify(entry), { mode: 0o600 })
    expect(await statusOf(registry, lossy)).toEqual({ status: 'unknown', reason: 'cwd-unverifiable' })
    expect(await registry.list()).toHaveLength(1)
  })

  it('reap judges with the registry\'s lease grace: a foreign entry list() keeps is refused, not deleted', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir, leaseGraceMs: 60_000 })
    await registry.write({ cwd: ws })
    // Past the default grace (10 s), within this registry's (60 s): still unknown here.
    tamper(registry, ws, (entry) => {
      entry.host = 'another-host'
      entry.leaseUntil = ago(30_000)
    })
    expect(await statusOf(registry, ws)).toEqual({ status: 'unknown', reason: 'lease-expired' })
    const entry = (await registry.list())[0] as Entry
    await expect(registry.reap(entry)).rejects.toMatchObject({ code: 'E_PERM' })
    expect(existsSync(registry.entryPath(ws))).toBe(true)
  })
})
