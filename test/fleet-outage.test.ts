import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Registry } from '../src/index.js'
import { EtcdStore } from '../src/fleet/index.js'
import { CLI, exited, runCli, sleeper, tempDir, track, waitFor } from './helpers.js'
import { ETCD_BINARY, HAVE_ETCD, startEtcd, type TestEtcd } from './etcd.js'

let etcd: TestEtcd
let prefixes = 0
const storeUrl = (): string => `etcd://${etcd.endpoint}/outage-${++prefixes}`

/** A wsreg child process with its output collected. */
function wsreg(args: string[]): { child: ChildProcess; stdout: () => string; stderr: () => string } {
  const child = track(spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] }))
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
  return { child, stdout: () => out, stderr: () => err }
}

/** A workspace with a live owner in registry `dir`. */
async function workspace(dir: string, root: string, name: string): Promise<{ ws: string; owner: ChildProcess }> {
  const ws = join(root, name)
  mkdirSync(ws)
  const owner = sleeper()
  await new Registry({ dir }).write({ cwd: ws, pid: owner.pid as number })
  return { ws, owner }
}

const count = (text: string, pattern: RegExp): number => text.split('\n').filter((line) => pattern.test(line)).length

describe.skipIf(!HAVE_ETCD)(`fleet outages${HAVE_ETCD ? '' : ` (skipped: ${ETCD_BINARY} not found)`}`, () => {
  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterAll(async () => {
    await etcd?.destroy()
  })

  it('when etcd stops and restarts, the agent says it lost the connection (before a keep-alive interval is out) and when it is back with how many entries it republished, one line each; watch --store says it reconnected and misses no transition', async () => {
    const url = storeUrl()
    const root = tempDir()
    const dir = join(root, 'reg')
    const steady = await workspace(dir, root, 'steady')
    const doomed = await workspace(dir, root, 'doomed')
    // TTL 6 s: keep-alives every 2 s. The agent used to say nothing until etcd3 gave the lease up (2 × TTL).
    const agent = wsreg(['publish', '--to', url, '--host', 'alpha', '--ttl', '6', '--dir', dir, '--interval', '100'])
    const watcher = wsreg(['watch', '--json', '--store', url, '--host', 'observer'])
    await waitFor(() => agent.stderr().includes('in sync'), 10_000, 'the agent in sync')
    await waitFor(() => /"type":"ready"/.test(watcher.stdout()), 10_000, 'the watcher ready')
    await waitFor(async () => (await listed(url)).length === 2, 10_000, 'both entries in the fleet')

    await etcd.stop()
    const lost = /^wsreg publish: lost connection to etcd at etcd:\/\/127\.0\.0\.1:\d+\/outage-\d+ \(.+\); retrying until it answers \(published entries stay for up to 6 s\)$/
    await waitFor(() => count(agent.stderr(), lost) === 1, 6_000, 'the agent to report the lost connection')
    await waitFor(() => /fleet watch lost etcd at /.test(watcher.stderr()), 10_000, 'the watcher to report the lost connection')
    // While etcd is away one workspace dies and another comes up: both transitions must reach the watcher.
    doomed.owner.kill('SIGKILL')
    await exited(doomed.owner)
    const late = await workspace(dir, root, 'late')
    await new Promise((resolve) => setTimeout(resolve, 300))
    await etcd.start()

    const back = /^wsreg publish: etcd at etcd:\/\/127\.0\.0\.1:\d+\/outage-\d+ is back after \d+\.\d s; republished (\d+) entr(?:y|ies) \((\d+) already there\)$/m
    const line = await waitFor(() => back.exec(agent.stderr()), 15_000, 'the agent to report being back')
    expect(Number(line[1]) + Number(line[2])).toBe(2)
    await waitFor(() => /wsreg: fleet watch reconnected to etcd at etcd:\/\/127\.0\.0\.1:\d+\/outage-\d+ after \d+\.\d s; re-listed \d+ entries/.test(watcher.stderr()), 15_000, 'the watcher to report the reconnection')
    const events = () => watcher.stdout().split('\n').filter(Boolean).map((text) => JSON.parse(text) as { type: string; entry?: { cwd: string } })
    await waitFor(() => events().some((event) => event.type === 'down' && event.entry?.cwd === doomed.ws), 10_000, 'the down event of the workspace that died during the outage')
    await waitFor(() => events().some((event) => event.type === 'up' && event.entry?.cwd === late.ws), 10_000, 'the up event of the workspace that came up during the outage')
    expect((await listed(url)).map((row) => row.cwd).sort()).toEqual([late.ws, steady.ws].sort())
    expect(count(agent.stderr(), lost)).toBe(1)
    expect(count(agent.stderr(), back)).toBe(1)
    expect(agent.stderr()).not.toMatch(/Lease .* is expired or revoked/)
  })

  it('a silent etcd (frozen with SIGSTOP, like a partition) is reported after one unanswered keep-alive interval, not a TTL', async () => {
    const url = storeUrl()
    const root = tempDir()
    const dir = join(root, 'reg')
    await workspace(dir, root, 'ws')
    // TTL 3 s: keep-alives every second.
    const agent = wsreg(['publish', '--to', url, '--host', 'alpha', '--ttl', '3', '--dir', dir])
    await waitFor(() => agent.stderr().includes('in sync'), 10_000, 'the agent in sync')
    etcd.pause()
    try {
      await waitFor(() => /lost connection to etcd at .*\(no keep-alive answer within 1\.0 s\)/.test(agent.stderr()), 10_000, 'the agent to notice the silence')
    } finally {
      etcd.resume()
    }
    await waitFor(() => /is back after \d+\.\d s; republished/.test(agent.stderr()), 15_000, 'the agent to report being back')
  })

  it('a publisher restarted after SIGKILL takes over its host at once (same boot, old pid dead), moving the entries to its own lease and revoking the old one', async () => {
    const url = storeUrl()
    const root = tempDir()
    const dir = join(root, 'reg')
    const { ws } = await workspace(dir, root, 'ws')
    // A 60 s lease: waiting it out would time this test out.
    const first = wsreg(['publish', '--to', url, '--host', 'alpha', '--ttl', '60', '--dir', dir])
    await waitFor(() => first.stderr().includes('in sync'), 10_000, 'the first agent in sync')
    const store = await EtcdStore.connect({ url, host: 'observer' })
    try {
      const agentKey = `${new URL(url.replace('etcd:', 'http:')).pathname}/wsreg/agents/alpha`
      const oldLease = (await store.client.get(agentKey).exec()).kvs[0]?.lease as string
      first.child.kill('SIGKILL')
      await exited(first.child)
      const second = wsreg(['publish', '--to', url, '--host', 'alpha', '--ttl', '60', '--dir', dir])
      await waitFor(() => second.stderr().includes('in sync'), 10_000, 'the restarted agent in sync')
      expect(second.stderr()).toMatch(new RegExp(`took over host alpha from the previous agent \\(pid ${first.child.pid}, exited\\)`))
      const agentKv = (await store.client.get(agentKey).exec()).kvs[0]
      expect(JSON.parse(agentKv?.value.toString() as string)).toMatchObject({ pid: second.child.pid })
      const entryKv = (await store.client.getAll().prefix(store.workspaces).exec()).kvs
      expect(entryKv.map((kv) => kv.lease)).toEqual([agentKv?.lease])
      expect((await store.listInfo()).map((row) => row.cwd)).toEqual([ws])
      await waitFor(async () => Number((await store.client.leaseClient.leaseTimeToLive({ ID: oldLease })).TTL) === -1, 5_000, 'the old lease revoked')
    } finally {
      await store.close()
    }
  })

  it('an agent key recorded on another boot (another machine with the same host name) is not taken over', async () => {
    const url = storeUrl()
    const store = await EtcdStore.connect({ url, host: 'alpha', ttlSeconds: 30 })
    try {
      const lease = await store.leaseId()
      const record = { pid: 2 ** 22 + 1, machine: hostname(), since: new Date().toISOString(), token: 'other', bootId: 'another-boot', pidStartTime: '1' }
      await store.client.put(`${new URL(url.replace('etcd:', 'http:')).pathname}/wsreg/agents/alpha`).value(JSON.stringify(record)).lease(lease)
      const result = await runCli(['publish', '--to', url, '--host', 'alpha', '--dir', join(tempDir(), 'reg')])
      expect(result.code).toBe(3)
      expect(result.stderr).toMatch(/Another agent already publishes host "alpha"/)
    } finally {
      await store.close()
    }
  })
})

async function listed(url: string): Promise<Array<{ cwd: string }>> {
  const store = await EtcdStore.connect({ url, host: 'observer' })
  try {
    return await store.listInfo()
  } catch {
    return []
  } finally {
    await store.close()
  }
}
