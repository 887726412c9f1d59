import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Registry, RegistryError, isRegistryError } from '../src/index.js'
import { sandbox, start, until } from './children.js'
import { lockState } from '../src/lock.js'
import { workspaceId } from '../src/paths.js'

async function claimedBy(file: string, dir: string, cwd: string, how: string) {
  const child = start(file, [dir, cwd, how])
  expect(await child.next()).toEqual({ claimed: child.pid })
  return child
}

describe('claim', () => {
  it('removes the entry when the process exits normally', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const child = await claimedBy('claimer.mjs', dir, cwd, 'wait-stdin')
    expect((await registry.read(cwd))?.pid).toBe(child.pid)
    child.process.stdin?.write('go\n')
    expect(await child.ended).toEqual({ code: 0, signal: null })
    expect(existsSync(registry.entryPath(cwd))).toBe(false)
  })

  it('removes the entry on SIGTERM and still dies by SIGTERM', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const child = await claimedBy('claimer.mjs', dir, cwd, 'wait')
    child.process.kill('SIGTERM')
    expect(await child.ended).toEqual({ code: null, signal: 'SIGTERM' })
    expect(existsSync(registry.entryPath(cwd))).toBe(false)
  })

  it('removes the entry on SIGINT and SIGHUP without swallowing them', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    for (const signal of ['SIGINT', 'SIGHUP'] as const) {
      const child = await claimedBy('claimer.mjs', dir, cwd, 'wait')
      child.process.kill(signal)
      expect(await child.ended).toEqual({ code: null, signal })
      expect(existsSync(registry.entryPath(cwd))).toBe(false)
    }
  })

  it('removes the entry after an uncaught exception', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const child = start('claimer.mjs', [dir, cwd, 'throw'], { stdio: ['pipe', 'pipe', 'ignore'] })
    await child.next()
    expect((await child.ended).code).toBe(1)
    expect(existsSync(registry.entryPath(cwd))).toBe(false)
  })

  it('leaves the entry after SIGKILL, and the next list prunes it', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const child = await claimedBy('claimer.mjs', dir, cwd, 'wait')
    child.process.kill('SIGKILL')
    await child.ended
    expect(existsSync(registry.entryPath(cwd))).toBe(true)
    expect(await registry.list()).toEqual([])
    expect(existsSync(registry.entryPath(cwd))).toBe(false)
  })

  it("never removes a successor's entry when the predecessor exits", async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const predecessor = await claimedBy('claimer.mjs', dir, cwd, 'wait-stdin')
    // A plain write (last writer wins) takes the workspace over while the claim still runs.
    const successor = start('child.mjs', [])
    await successor.next()
    await registry.write({ cwd, pid: successor.pid })
    predecessor.process.stdin?.write('go\n')
    expect((await predecessor.ended).code).toBe(0)
    expect((await registry.read(cwd))?.pid).toBe(successor.pid)
  })

  it('updates its entry, keeps startedAt, and refuses (and aborts its signal) once a successor owns the workspace', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const claim = await registry.claim({ cwd, name: 'first', url: 'http://127.0.0.1:1' })
    const updated = await claim.update({ url: 'http://127.0.0.1:2', meta: { port: 2 } })
    expect(updated).toMatchObject({ name: 'first', url: 'http://127.0.0.1:2', meta: { port: 2 }, startedAt: claim.entry.startedAt })
    expect(JSON.parse(readFileSync(registry.entryPath(cwd), 'utf8')).url).toBe('http://127.0.0.1:2')
    expect(claim.signal.aborted).toBe(false)
    const successor = start('child.mjs', [])
    await successor.next()
    await registry.write({ cwd, pid: successor.pid })
    const error = await claim.update({ name: 'late' }).catch((error: unknown) => error)
    expect((error as RegistryError).code).toBe('E_LOCKED')
    expect(claim.signal.aborted).toBe(true)
    expect((claim.signal.reason as RegistryError<'E_LOCKED'>).details).toMatchObject({ lost: true, pid: successor.pid })
    expect(await claim.release()).toBe(false)
    expect((await registry.read(cwd))?.pid).toBe(successor.pid)
  })

  it('aborts its signal when another writer replaces the entry, found by the periodic check without an update', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const claim = await registry.claim({ cwd })
    const successor = start('child.mjs', [])
    await successor.next()
    await registry.write({ cwd, pid: successor.pid })
    await until(() => claim.signal.aborted)
    expect((claim.signal.reason as RegistryError).code).toBe('E_LOCKED')
    // A lost claim gives its lock up: the lock alone is free to take again.
    const release = await registry.lock(cwd)
    await release()
    expect(await claim.release()).toBe(false)
    expect((await registry.read(cwd))?.pid).toBe(successor.pid)
  })

  it('refuses a second claim of a live workspace with E_LOCKED carrying the holder pid and its entry', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const holder = await claimedBy('claimer.mjs', dir, cwd, 'wait')
    const error = await registry.claim({ cwd }).catch((error: unknown) => error)
    expect(isRegistryError(error, 'E_LOCKED')).toBe(true)
    const details = (error as RegistryError<'E_LOCKED'>).details
    expect(details.pid).toBe(holder.pid)
    expect(details.entry?.url).toBe('http://127.0.0.1:4321')
    expect((await registry.read(cwd))?.pid).toBe(holder.pid)
  })

  it('refuses a claim while the entry names another running process, though nobody holds the lock', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const worker = start('child.mjs', [])
    await worker.next()
    await registry.write({ cwd, pid: worker.pid, url: 'http://127.0.0.1:9' })
    const error = await registry.claim({ cwd }).catch((error: unknown) => error as RegistryError)
    expect(error).toMatchObject({ code: 'E_LOCKED', details: { pid: worker.pid, entry: { url: 'http://127.0.0.1:9' } } })
  })

  it('waits with waitMs for the holder to go, then claims', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const holder = await claimedBy('claimer.mjs', dir, cwd, 'wait-stdin')
    const claiming = registry.claim({ cwd }, { waitMs: 10_000 })
    holder.process.stdin?.write('go\n')
    const claim = await claiming
    expect(claim.entry.pid).toBe(process.pid)
    await claim.release()
  })

  it('claims again after its own release, and `await using` releases at the end of the scope', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    {
      await using claim = await registry.claim({ cwd })
      expect((await registry.read(cwd))?.pid).toBe(process.pid)
      expect(claim.signal.aborted).toBe(false)
    }
    expect(existsSync(registry.entryPath(cwd))).toBe(false)
    const again = await registry.claim({ cwd })
    await again.release()
  })

  it('claims on behalf of another pid, and that entry outlives the launcher', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const worker = start('child.mjs', [])
    await worker.next()
    const launcher = start('claimer.mjs', [dir, cwd, 'exit', String(worker.pid)])
    expect(await launcher.next()).toEqual({ claimed: launcher.pid })
    expect((await launcher.ended).code).toBe(0)
    expect((await registry.read(cwd))?.pid).toBe(worker.pid)
  })
})

describe('claim with uniqueName', () => {
  it('refuses E_NAME_TAKEN, with the holder in details, while a live workspace of that name runs at another cwd', async () => {
    const { root, dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const holder = await claimedBy('claimer.mjs', dir, cwd, 'wait')
    const elsewhere = join(root, 'elsewhere')
    mkdirSync(elsewhere)
    const error = await registry.claim({ cwd: elsewhere, name: 'claimer' }, { uniqueName: true }).catch((error: unknown) => error)
    expect(isRegistryError(error, 'E_NAME_TAKEN')).toBe(true)
    const details = (error as RegistryError<'E_NAME_TAKEN'>).details
    // Typed per code: the entry needs no cast.
    const url: string | undefined = details.entry.url
    expect({ pid: details.pid, cwd: details.entry.cwd, url }).toEqual({ pid: holder.pid, cwd, url: 'http://127.0.0.1:4321' })
    expect(existsSync(registry.entryPath(elsewhere))).toBe(false)
    // Without uniqueName the same name may run in two folders.
    const claim = await registry.claim({ cwd: elsewhere, name: 'claimer' })
    await claim.release()
    holder.process.kill('SIGKILL')
    await holder.ended
    const after = await registry.claim({ cwd: elsewhere, name: 'claimer' }, { uniqueName: true })
    await after.release()
  })
})

describe('claim after lock', () => {
  it('lock() then claim() in one process: the claim uses the held lock, a second claim is refused, and the lock outlives the claim', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const release = await registry.lock(cwd)
    const claim = await registry.claim({ cwd, url: 'http://127.0.0.1:5' })
    const refused = await registry.claim({ cwd }).catch((error: unknown) => error as RegistryError)
    expect(refused).toMatchObject({ code: 'E_LOCKED', details: { pid: process.pid, entry: { url: 'http://127.0.0.1:5' } } })
    expect(await claim.release()).toBe(true)
    // Still ours until release(): another lock attempt is refused.
    await expect(registry.lock(cwd)).rejects.toMatchObject({ code: 'E_LOCKED' })
    await release()
    const again = await registry.claim({ cwd })
    await again.release()
  })

  it('a lock() released while a claim of the same process uses it stays held until the claim lets go', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const id = workspaceId(cwd)
    const release = await registry.lock(cwd)
    const claim = await registry.claim({ cwd })
    await release()
    // The claim is still exclusive: the kernel lock has not gone with the lock() caller's release.
    expect(await lockState(dir, id)).toBe('held')
    expect(await claim.release()).toBe(true)
    expect(await lockState(dir, id)).toBe('free')
  })
})
