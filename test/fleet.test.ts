import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Registry, RegistryError, workspaceId, type DownEvent, type Entry, type RegistryEvent } from '../src/index.js'
import { EtcdStore } from '../src/fleet/index.js'
import { CLI, FIXTURES, exited, runCli, sleeper, tempDir, track, waitFor } from './helpers.js'
import { ETCD_BINARY, HAVE_ETCD, startEtcd, type TestEtcd } from './etcd.js'

let etcd: TestEtcd
let prefixes = 0
/** A fresh key prefix per test, so tests sharing one etcd never see each other's entries. */
const storeUrl = (): string => `etcd://${etcd.endpoint}/test-${process.pid}-${++prefixes}`

/** A host: a registry folder with one live workspace owned by a sleeping child. */
async function host(name: string): Promise<{ dir: string; ws: string; entry: Entry; owner: ChildProcess }> {
  const root = tempDir()
  const ws = join(root, `ws-${name}`)
  mkdirSync(ws)
  const dir = join(root, 'reg')
  const owner = sleeper()
  const entry = await new Registry({ dir }).write({ cwd: ws, pid: owner.pid as number })
  return { dir, ws, entry, owner }
}

/** `wsreg publish` as a child process, with its stderr collected. */
function agent(url: string, dir: string, name: string): { child: ChildProcess; stderr: () => string } {
  const child = track(spawn(process.execPath, [CLI, 'publish', '--to', url, '--host', name, '--ttl', '2', '--dir', dir, '--interval', '200'], { stdio: ['ignore', 'ignore', 'pipe'] }))
  let text = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
  return { child, stderr: () => text }
}

/** The fleet listing through `wsreg ls --store … --json`. */
async function fleetCli(url: string): Promise<Array<Entry & { status: string }>> {
  const result = await runCli(['ls', '--json', '--store', url])
  if (result.code !== 0) throw new Error(result.stderr)
  return JSON.parse(result.stdout) as Array<Entry & { status: string }>
}

/** The fleet listing in-process (cheaper to poll than a CLI run per attempt). */
async function fleet(url: string): Promise<Array<Entry & { status: string }>> {
  const store = await EtcdStore.connect({ url, host: 'observer' })
  try {
    return await store.listInfo()
  } finally {
    await store.close()
  }
}

async function connect(url: string, name = 'observer'): Promise<EtcdStore> {
  return EtcdStore.connect({ url, host: name, ttlSeconds: 2 })
}

describe('wsreg without the optional etcd client', () => {
  const withoutEtcd3 = (args: string[], dir: string) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = track(spawn(process.execPath, ['--import', join(FIXTURES, 'no-etcd3.mjs'), CLI, ...args], { env: { ...process.env, WSREG_REGISTRY_DIR: dir, NO_COLOR: '1' } }))
      let stderr = ''
      child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
      child.on('close', (code) => resolve({ code, stderr }))
    })

  it('lists the local registry, and names the missing package when asked for a fleet', async () => {
    const dir = join(tempDir(), 'reg')
    expect((await withoutEtcd3(['ls'], dir)).code).toBe(0)
    const fleetList = await withoutEtcd3(['ls', '--store', 'etcd://127.0.0.1:1'], dir)
    expect(fleetList.code).toBe(1)
    expect(fleetList.stderr).toContain("The etcd client is not installed: run `npm install etcd3@^1.1.2` where workspace-registry is installed (for a global wsreg: `npm install -g etcd3`)")
  })

  it('rejects a malformed store URL and ls --watch on a fleet as usage errors', async () => {
    const result = await runCli(['ls', '--store', 'http://localhost:2379'])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/etcd:\/\/HOST\[:PORT\]/)
    const watching = await runCli(['ls', '--watch', '--store', 'etcd://127.0.0.1:1'])
    expect(watching.code).toBe(2)
    expect(watching.stderr).toMatch(/wsreg watch --store/)
  })

  it('fails with a message naming the store when etcd is unreachable', async () => {
    const result = await runCli(['ls', '--store', 'etcd://127.0.0.1:1'])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/etcd at etcd:\/\/127\.0\.0\.1:1 is unreachable .*check that it runs/)
  })
})

describe.skipIf(!HAVE_ETCD)(`fleet on a real etcd${HAVE_ETCD ? "" : ` (skipped: ${ETCD_BINARY} not found — apt-get install etcd-server)`}`, () => {
  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterAll(async () => {
    await etcd?.destroy()
  })

  it('shows two hosts, one agent each, in one fleet listing with a HOST column, and refuses a second agent for a host name', async () => {
    const url = storeUrl()
    const alpha = await host('alpha')
    const beta = await host('beta')
    agent(url, alpha.dir, 'alpha')
    agent(url, beta.dir, 'beta')
    await waitFor(async () => (await fleet(url)).length === 2, 10_000, 'both hosts in the fleet')
    const rows = await fleetCli(url)
    expect(rows.map((row) => [row.host, row.cwd, row.status])).toEqual([
      ['alpha', alpha.ws, 'alive'],
      ['beta', beta.ws, 'alive'],
    ])
    const table = await runCli(['ls', '--store', url])
    expect(table.stdout).toMatch(/^NAME\s+STATUS\s+PID\s+UPTIME\s+HOST\s+CWD/)
    expect(table.stdout).toMatch(/ws-beta\s+alive\s+\d+\s+\S+\s+beta\s/)

    const second = await runCli(['publish', '--to', url, '--host', 'alpha', '--dir', beta.dir])
    expect(second.code).toBe(3)
    expect(second.stderr).toMatch(/Another agent already publishes host "alpha".*--host/)
  })

  it('withdraws an entry whose owner dies or that is removed locally, and publishes new ones', async () => {
    const url = storeUrl()
    const alpha = await host('alpha')
    agent(url, alpha.dir, 'alpha')
    await waitFor(async () => (await fleet(url)).length === 1, 10_000, 'the entry in the fleet')
    alpha.owner.kill('SIGKILL')
    await waitFor(async () => (await fleet(url)).length === 0, 10_000, 'the dead entry to leave the fleet')
    const idle = await new Registry({ dir: alpha.dir }).register(alpha.ws)
    const rows = await waitFor(async () => {
      const current = await fleet(url)
      return current.length === 1 ? current : undefined
    }, 10_000, 'the idle entry in the fleet')
    expect(rows[0]).toMatchObject({ cwd: idle.cwd, pid: 0, status: 'idle', host: 'alpha' })
    await new Registry({ dir: alpha.dir }).remove(alpha.ws)
    await waitFor(async () => (await fleet(url)).length === 0, 10_000, 'the removed entry to leave the fleet')
  })

  it('stores the entry file JSON under <prefix>/<app>/workspaces/<host>/<id>, and ignores values that fail validation', async () => {
    const url = storeUrl()
    const alpha = await host('alpha')
    const store = await connect(url, 'alpha')
    try {
      await store.write(alpha.entry)
      const raw = await store.client.get(`${new URL(url.replace('etcd:', 'http:')).pathname}/wsreg/workspaces/alpha/${alpha.entry.id}`).string()
      expect(JSON.parse(raw as string)).toEqual(alpha.entry)
      // A value planted under another workspace's id, and one that is not JSON, are not entries.
      await store.client.put(store.key('0123456789abcdef')).value(JSON.stringify(alpha.entry))
      await store.client.put(store.key('fedcba9876543210')).value('{not json')
      expect((await store.list()).map((row) => row.entry.id)).toEqual([alpha.entry.id])
    } finally {
      await store.close()
    }
  })

  it('judges its own host by the truth table and other hosts by their lease', async () => {
    const url = storeUrl()
    const alpha = await host('alpha')
    const store = await connect(url, 'alpha')
    try {
      await store.write(alpha.entry)
      alpha.owner.kill('SIGKILL')
      await exited(alpha.owner)
      // On alpha the owner is dead; elsewhere a live lease is all anyone can know.
      expect(await store.listInfo({ localHost: 'alpha' })).toEqual([])
      expect((await store.listInfo({ localHost: 'alpha', all: true })).map((row) => [row.status, row.reason])).toEqual([['dead', 'exited']])
      expect((await store.listInfo({ localHost: 'observer' })).map((row) => row.status)).toEqual(['alive'])
      const cli = await runCli(['ls', '--json', '--store', url, '--host', 'alpha', '--all'])
      expect((JSON.parse(cli.stdout) as Array<{ status: string }>).map((row) => row.status)).toEqual(['dead'])
    } finally {
      await store.close()
    }
  })

  it('drops the entries of a SIGKILLed agent within the TTL, with down events on a fleet watcher', async () => {
    const url = storeUrl()
    const alpha = await host('alpha')
    const beta = await host('beta')
    agent(url, alpha.dir, 'alpha')
    const victim = agent(url, beta.dir, 'beta')
    const observer = await connect(url)
    const events: RegistryEvent[] = []
    const watcher = observer.watch()
    watcher.on('ready', (event) => events.push(event))
    watcher.on('up', (event) => events.push(event))
    watcher.on('down', (event) => events.push(event))
    try {
      await waitFor(() => events.filter((event) => event.type === 'up' || event.type === 'ready').flatMap((event) => (event.type === 'ready' ? event.entries.map((row) => row.entry) : [event.entry])).length >= 2, 10_000, 'both hosts up')
      victim.child.kill('SIGKILL')
      await exited(victim.child)
      const down = (await waitFor(() => events.find((event): event is DownEvent => event.type === 'down'), 10_000, 'a down event')) as DownEvent
      expect(down.entry.host).toBe('beta')
      expect(down.entry.cwd).toBe(beta.ws)
      expect((await fleet(url)).map((row) => row.host)).toEqual(['alpha'])
    } finally {
      await watcher.close()
      await observer.close()
    }
  })

  it('loses nothing when etcd is stopped and restarted mid-run, and says so on stderr', async () => {
    const url = storeUrl()
    const alpha = await host('alpha')
    const publisher = agent(url, alpha.dir, 'alpha')
    await waitFor(async () => (await fleet(url)).length === 1, 10_000, 'the entry in the fleet')
    await etcd.stop()
    // A workspace that comes up while etcd is away must reach the fleet once it is back.
    const late = join(alpha.ws, 'late')
    mkdirSync(late)
    await new Registry({ dir: alpha.dir }).write({ cwd: late, pid: sleeper().pid as number })
    await waitFor(() => /lost connection to etcd at /.test(publisher.stderr()), 10_000, 'the agent to report the outage')
    await etcd.start()
    const rows = await waitFor(async () => {
      const current = await fleet(url).catch(() => [])
      return current.length === 2 ? current : undefined
    }, 15_000, 'both entries after the restart')
    expect(rows.map((row) => row.cwd).sort()).toEqual([alpha.ws, late].sort())
    await waitFor(() => /is back after .*; republished/.test(publisher.stderr()), 10_000, 'the agent to report recovery')
  })

  it('admits exactly one of 8 racers from two processes to the fleet-wide lock; a SIGKILLed holder frees it within the TTL', async () => {
    const url = storeUrl()
    const cwd = tempDir()
    const racers = ['alpha', 'beta'].map((name) => {
      const child = track(spawn(process.execPath, [join(FIXTURES, 'fleet-locker.mjs'), url, cwd, name, '4'], { stdio: ['pipe', 'pipe', 'inherit'] }))
      let out = ''
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
      return { child, lines: () => out.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { ready?: boolean; won?: number; refused?: string[] }) }
    })
    await waitFor(() => racers.every((racer) => racer.lines().some((line) => line.ready)), 10_000, 'racers connected')
    for (const racer of racers) racer.child.stdin?.write('go\n')
    const results = await waitFor(() => {
      const done = racers.map((racer) => racer.lines().find((line) => line.won !== undefined))
      return done.every(Boolean) ? done : undefined
    }, 10_000, 'racers done')
    expect(results.reduce((sum, result) => sum + (result?.won ?? 0), 0)).toBe(1)
    expect(results.flatMap((result) => result?.refused ?? [])).toEqual(Array(7).fill('E_LOCKED'))

    const store = await connect(url)
    try {
      const error = await store.lock(cwd).then(() => undefined, (error: unknown) => error)
      expect(error).toBeInstanceOf(RegistryError)
      expect((error as RegistryError).code).toBe('E_LOCKED')
      expect(['alpha', 'beta']).toContain(((error as RegistryError).details.holder as { host: string }).host)
      const holder = racers[results.findIndex((result) => result?.won === 1)] as { child: ChildProcess }
      holder.child.kill('SIGKILL')
      const release = await store.lock(cwd, { waitMs: 10_000 })
      await release()
    } finally {
      await store.close()
    }
  })

  it('ls --store prints the control characters of a planted entry as visible escapes, one row per entry; --json keeps them exact', async () => {
    const url = storeUrl()
    const alpha = await host('alpha')
    const evil = 'x\u001b]0;pwned\u0007\u001b[2J\u009b31m\u202eabc\rFAKE  alive  1\ny'
    const store = await connect(url, 'alpha')
    try {
      await store.write({ ...alpha.entry, name: evil, url: `http://127.0.0.1:1/${evil}` })
      const table = await runCli(['ls', '--store', url])
      expect(table.code).toBe(0)
      // eslint-disable-next-line no-control-regex
      expect(table.stdout + table.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/u)
      expect(table.stdout.trimEnd().split('\n')).toHaveLength(2)
      expect(table.stdout).toContain('x\\e]0;pwned\\x07')
      const rows = JSON.parse((await runCli(['ls', '--json', '--store', url])).stdout)
      expect(rows[0]).toMatchObject({ name: evil, url: `http://127.0.0.1:1/${evil}` })
    } finally {
      await store.close()
    }
  })

  it('a fleet lock handle is callable as release() and carries its key, a live signal and a fencing token that grows with each holder', async () => {
    const url = storeUrl()
    const cwd = tempDir()
    const store = await connect(url)
    try {
      const first = await store.lock(cwd)
      expect(first.signal.aborted).toBe(false)
      expect(first.key).toMatch(new RegExp(`/locks/${workspaceId(cwd)}$`))
      expect(typeof first.fencingToken).toBe('bigint')
      await first()
      const second = await store.lock(cwd)
      expect(second.fencingToken).toBeGreaterThan(first.fencingToken)
      await second.release()
      await second.release()
      expect(second.signal.aborted).toBe(false)
    } finally {
      await store.close()
    }
  })

  it('a holder paused (SIGSTOP) longer than the TTL sees its lock signal abort with E_LOCKED lost, and the next holder gets a higher fencing token', async () => {
    const url = storeUrl()
    const cwd = tempDir()
    const holder = track(spawn(process.execPath, [join(FIXTURES, 'fleet-holder.mjs'), url, cwd, '2'], { stdio: ['ignore', 'pipe', 'inherit'] }))
    let out = ''
    holder.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
    const lines = () => out.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { locked?: boolean; token?: string; aborted?: boolean; lost?: boolean; code?: string; details?: unknown })
    const locked = await waitFor(() => lines().find((line) => line.locked), 10_000, 'the holder to take the lock')
    expect(locked.aborted).toBe(false)
    const store = await connect(url)
    try {
      holder.kill('SIGSTOP')
      // While the holder is frozen its lease expires on the server and the lock becomes free.
      const successor = await waitFor(() => store.lock(cwd).catch(() => undefined), 20_000, 'the lock to be free again')
      holder.kill('SIGCONT')
      const lost = await waitFor(() => lines().find((line) => line.lost), 10_000, 'the holder to learn it lost the lock')
      expect(lost).toMatchObject({ code: 'E_LOCKED', details: { lost: true } })
      expect(successor.fencingToken).toBeGreaterThan(BigInt(locked.token as string))
      expect(successor.signal.aborted).toBe(false)
      await successor()
    } finally {
      holder.kill('SIGCONT')
      await store.close()
    }
  })

  it('compare-and-delete never removes a newer write', async () => {
    const url = storeUrl()
    const alpha = await host('alpha')
    const store = await connect(url, 'alpha')
    try {
      const first = await store.write(alpha.entry)
      const newer = await store.write({ ...alpha.entry, name: 'newer' })
      expect(await store.compareAndDelete(alpha.entry.id, first.version)).toBe('changed')
      expect((await store.read(alpha.entry.id))?.entry.name).toBe('newer')
      // Racing a rewrite against a delete of the version before it: the rewrite always survives.
      let version = newer.version
      for (let round = 0; round < 40; round++) {
        const [written] = await Promise.all([store.write({ ...alpha.entry, name: `round-${round}` }), store.compareAndDelete(alpha.entry.id, version)])
        const current = await store.read(alpha.entry.id)
        expect(current?.entry.name).toBe(`round-${round}`)
        version = written.version
      }
      expect(await store.compareAndDelete(alpha.entry.id, version)).toBe('deleted')
      expect(await store.read(alpha.entry.id)).toBeUndefined()
      expect(await store.compareAndDelete(alpha.entry.id, version)).toBe('missing')
      expect(workspaceId(alpha.ws)).toBe(alpha.entry.id)
    } finally {
      await store.close()
    }
  })
})
