import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Registry, type Entry } from '../src/index.js'
import { EtcdStore } from '../src/fleet/index.js'
import { CLI, FIXTURES, exited, writeDeadEntry, runCli, sleeper, tempDir, track, waitFor } from './helpers.js'
import { ETCD_BINARY, HAVE_ETCD, startEtcd, type TestEtcd } from './etcd.js'

let etcd: TestEtcd
let prefixes = 0
const storeUrl = (): string => `etcd://${etcd.endpoint}/owners-${++prefixes}`

/** The direct-owner fixture, with its JSON lines collected. */
function owner(url: string, cwd: string, host: string, leaseMs: number, env: NodeJS.ProcessEnv = {}): { child: ChildProcess; lines: () => Array<Record<string, unknown>>; send(line: string): void } {
  const child = track(spawn(process.execPath, [join(FIXTURES, 'fleet-owner.mjs'), url, cwd, host, String(leaseMs)], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } }))
  let out = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  return { child, lines: () => out.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>), send: (line) => void child.stdin?.write(`${line}\n`) }
}

/** The fleet as `wsreg ls --store` lists it, through the CLI or (cheaper to repeat) in-process. */
async function fleet(url: string, through: 'cli' | 'library' = 'library'): Promise<Array<{ cwd: string; host: string; name: string; status: string; pid: number }>> {
  if (through === 'library') {
    const store = await EtcdStore.connect({ url, host: 'observer' })
    try {
      return await store.listInfo()
    } finally {
      await store.close()
    }
  }
  const result = await runCli(['ls', '--json', '--store', url, '--host', 'observer'])
  if (result.code !== 0) throw new Error(result.stderr)
  return JSON.parse(result.stdout) as Array<{ cwd: string; host: string; name: string; status: string; pid: number }>
}

describe.skipIf(!HAVE_ETCD)(`direct owners: EtcdStore.claim${HAVE_ETCD ? '' : ` (skipped: ${ETCD_BINARY} not found)`}`, () => {
  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterAll(async () => {
    await etcd?.destroy()
  })

  it('taking over a dead owner\'s key never revokes the lease it was on (an agent\'s lease holds the rest of its host), and a value that does not parse is held, not taken over', async () => {
    const url = storeUrl()
    const root = tempDir()
    const deadWs = join(root, 'dead')
    const otherWs = join(root, 'other')
    const oddWs = join(root, 'odd')
    for (const folder of [deadWs, otherWs, oddWs]) mkdirSync(folder)
    const store = await EtcdStore.connect({ url })
    try {
      // An "agent" lease holding two entries of this host: a dead owner's and a live one's.
      const local = new Registry({ dir: join(root, 'reg') })
      await writeDeadEntry(local, deadWs)
      const dead = JSON.parse(readFileSync(local.entryPath(deadWs), 'utf8')) as Entry
      const live = await local.write({ cwd: otherWs, pid: sleeper().pid as number })
      const agentLease = store.client.lease(60)
      const leaseId = await agentLease.grant()
      for (const entry of [dead, live]) await store.client.put(store.key(entry.id)).value(JSON.stringify(entry)).lease(leaseId)
      const claim = await store.claim({ cwd: deadWs }, { leaseMs: 10_000 })
      expect(claim.entry.pid).toBe(process.pid)
      expect(await store.client.get(store.key(live.id)).string()).not.toBeNull()
      await claim.release()
      // Another writer's value that this version cannot parse proves nothing about its owner.
      const odd = (await new Registry({ dir: join(root, 'reg') }).write({ cwd: oddWs })).id
      await store.client.put(store.key(odd)).value('{"version":99,"from":"a newer wsreg"}')
      await expect(store.claim({ cwd: oddWs }, { leaseMs: 10_000 })).rejects.toMatchObject({ code: 'E_LOCKED' })
      await agentLease.revoke()
    } finally {
      await store.close()
    }
  })

  it('a process claims its workspace in etcd without an agent; ls --store shows it beside published entries (the agent leaves it alone); update rewrites it, release removes it at once', async () => {
    const url = storeUrl()
    const root = tempDir()
    const published = join(root, 'published')
    const direct = join(root, 'direct')
    mkdirSync(published)
    mkdirSync(direct)
    const claimer = owner(url, direct, 'alpha', 60_000)
    await waitFor(() => claimer.lines().find((line) => line.claimed), 10_000, 'the claim')
    // An agent publishing the same host name must neither delete nor take over the direct owner's key.
    const dir = join(root, 'reg')
    await new Registry({ dir }).write({ cwd: published, pid: sleeper().pid as number })
    const agent = track(spawn(process.execPath, [CLI, 'publish', '--to', url, '--host', 'alpha', '--dir', dir], { stdio: ['ignore', 'ignore', 'pipe'] }))
    let agentErr = ''
    agent.stderr?.setEncoding('utf8').on('data', (chunk: string) => (agentErr += chunk))
    await waitFor(() => agentErr.includes('in sync'), 10_000, 'the agent in sync')
    expect((await fleet(url, 'cli')).map((row) => [row.host, row.cwd, row.status]).sort()).toEqual([['alpha', direct, 'alive'], ['alpha', published, 'alive']].sort())

    // The same workspace showing up in the agent's local registry later must not take the key over either.
    const third = join(root, 'third')
    mkdirSync(third)
    await new Registry({ dir }).write({ cwd: direct, pid: sleeper().pid as number })
    await new Registry({ dir }).write({ cwd: third, pid: sleeper().pid as number })
    await waitFor(async () => (await fleet(url)).some((row) => row.cwd === third), 10_000, 'the agent to publish a later workspace')
    expect((await fleet(url)).find((row) => row.cwd === direct)).toMatchObject({ pid: claimer.child.pid })

    claimer.send('update renamed')
    await waitFor(() => claimer.lines().find((line) => line.updated === 'renamed'), 10_000, 'the update')
    expect((await fleet(url)).find((row) => row.cwd === direct)?.name).toBe('renamed')
    claimer.send('release')
    await waitFor(() => claimer.lines().find((line) => line.released === true), 10_000, 'the release')
    expect((await fleet(url)).map((row) => row.cwd).sort()).toEqual([published, third].sort())
  })

  it('is exclusive per workspace: a second claimer gets E_LOCKED with the holder; an owner proven dead on this machine (SIGKILL) is replaced at once', async () => {
    const url = storeUrl()
    const ws = tempDir()
    const first = owner(url, ws, 'alpha', 1000)
    await waitFor(() => first.lines().find((line) => line.claimed), 10_000, 'the first claim')
    const store = await EtcdStore.connect({ url, host: 'alpha' })
    try {
      const refused = await store.claim({ cwd: ws }).then(() => undefined, (error: unknown) => error as { code: string; details: { pid: number; entry: { cwd: string } } })
      expect(refused?.code).toBe('E_LOCKED')
      expect(refused?.details.pid).toBe(first.child.pid)
      expect(refused?.details.entry.cwd).toBe(ws)

      // SIGKILL: no cleanup runs, but this machine can prove the owner dead, so the next claim need not wait.
      first.child.kill('SIGKILL')
      await exited(first.child)
      const second = await store.claim({ cwd: ws }, { leaseMs: 1000 })
      expect(second.entry.pid).toBe(process.pid)
      await second.release()
    } finally {
      await store.close()
    }
  })

  it('SIGTERM revokes the lease before the process ends by that signal: the entry leaves the fleet at once, not after the lease', async () => {
    const url = storeUrl()
    const ws = tempDir()
    const claimer = owner(url, ws, 'alpha', 60_000)
    await waitFor(() => claimer.lines().find((line) => line.claimed), 10_000, 'the claim')
    expect((await fleet(url)).map((row) => row.cwd)).toEqual([ws])
    claimer.child.kill('SIGTERM')
    expect(await exited(claimer.child)).toEqual({ code: null, signal: 'SIGTERM' })
    // The revoke is sent before the process ends; a loaded etcd may apply it a moment later, still far inside the 60-s lease.
    await waitFor(async () => (await fleet(url)).length === 0, 15_000, 'the revoked entry to leave the fleet (not the 60-s lease)')
  })

  it('a SIGTERM the moment claim() returns still revokes: the exit handler is in place before the claim is handed back', async () => {
    const url = storeUrl()
    const ws = tempDir()
    const claimer = owner(url, ws, 'alpha', 60_000, { FLEET_OWNER_TERM: '1' })
    expect(await exited(claimer.child)).toEqual({ code: null, signal: 'SIGTERM' })
    await waitFor(async () => (await fleet(url)).length === 0, 15_000, 'the revoked entry to leave the fleet (not the 60-s lease)')
  })
})
