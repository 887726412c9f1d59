import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { Registry, RegistryError } from '../src/index.js'
import { sandbox, start } from './children.js'

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
    const successor = await claimedBy('claimer.mjs', dir, cwd, 'wait')
    predecessor.process.stdin?.write('go\n')
    expect((await predecessor.ended).code).toBe(0)
    expect((await registry.read(cwd))?.pid).toBe(successor.pid)
    successor.process.kill('SIGTERM')
    await successor.ended
    expect(existsSync(registry.entryPath(cwd))).toBe(false)
  })

  it('updates its entry, keeps startedAt, and refuses once a successor owns the workspace', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const claim = await registry.claim({ cwd, name: 'first', url: 'http://127.0.0.1:1' })
    const updated = await claim.update({ url: 'http://127.0.0.1:2', meta: { port: 2 } })
    expect(updated).toMatchObject({ name: 'first', url: 'http://127.0.0.1:2', meta: { port: 2 }, startedAt: claim.entry.startedAt })
    expect(JSON.parse(readFileSync(registry.entryPath(cwd), 'utf8')).url).toBe('http://127.0.0.1:2')
    const successor = await claimedBy('claimer.mjs', dir, cwd, 'wait')
    const error = await claim.update({ name: 'late' }).catch((error: unknown) => error)
    expect((error as RegistryError).code).toBe('E_LOCKED')
    expect(await claim.release()).toBe(false)
    expect((await registry.read(cwd))?.pid).toBe(successor.pid)
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
