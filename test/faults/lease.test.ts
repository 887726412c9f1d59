// Heartbeat leases against a real container-like writer: a child in its own PID namespace (`unshare -p`), whose pid
// means nothing here, so only its lease can tell a crashed owner from a live one.
import { spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { describe, expect, it } from 'vitest'
import { Registry, type Entry } from '../../src/index.js'
import { isErrno, type RegistryError } from '../../src/errors.js'
import { FIXTURES, ROOT, sandbox, tempDir, track, waitFor } from '../helpers.js'
import { missing, registryIn, tinyDisk } from './kit.js'

const CLAIMER = join(FIXTURES, 'leased-claimer.mjs')

/** Start the leased claimer (behind `prefix`) and wait for its claim; `hostPid` is the claimer's pid as seen from here. */
async function leasedOwner(prefix: string[], dir: string, ws: string, leaseMs: number): Promise<{ hostPid: number }> {
  const [command, ...rest] = [...prefix, process.execPath, CLAIMER, dir, ws, String(leaseMs)]
  const child = track(spawn(command as string, rest, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] }))
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const first = await new Promise<string>((resolve) => lines.once('line', resolve))
  expect(JSON.parse(first)).toHaveProperty('claimed')
  if (prefix.length === 0) return { hostPid: child.pid as number }
  // unshare forks the claimer (pid 1 in its namespace): its pid here is unshare's only child.
  const hostPid = await waitFor(() => Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0]) || 0)
  return { hostPid }
}

const CONTAINER = ['unshare', '-p', '--kill-child', '--mount-proc']

function entryFile(registry: Registry, ws: string): Entry {
  return JSON.parse(readFileSync(registry.entryPath(ws), 'utf8')) as Entry
}

describe('heartbeat leases', () => {
  it.skipIf(missing('unshare -p') !== '')('an owner in another PID namespace that is SIGKILLed is pruned once its lease and the grace have passed, never before' + missing('unshare -p'), async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir, leaseGraceMs: 300 })
    const { hostPid } = await leasedOwner(CONTAINER, dir, ws, 600)
    expect(await registry.listInfo()).toMatchObject([{ cwd: ws, status: 'unknown', reason: 'foreign-pid-namespace' }])
    process.kill(hostPid, 'SIGKILL')
    // Nothing renews the lease after the kill: this is the last one.
    const deadline = Date.parse(entryFile(registry, ws).leaseUntil as string) + 300
    await waitFor(async () => (await registry.list()).length === 0, 10_000, 'the lapsed entry to be pruned')
    expect(Date.now()).toBeGreaterThan(deadline)
  }, 20_000)

  it.skipIf(missing('unshare -p') !== '')('an owner in another PID namespace that keeps renewing its lease is never pruned' + missing('unshare -p'), async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir, leaseGraceMs: 500 })
    await leasedOwner(CONTAINER, dir, ws, 1500)
    const { startedAt } = entryFile(registry, ws)
    // Watch it for longer than lease + grace (six renewals, 500 ms apart): no list ever judges it dead (a pruning list
    // with all: true returns what it prunes), and the lease keeps moving. A list that runs while a renewal has the
    // file taken aside (compare-and-swap) sees no row for that instant; that is not a prune.
    const seen = new Set<string>()
    await waitFor(async () => {
      const rows = await registry.listInfo({ all: true })
      expect(rows.filter((row) => row.status !== 'unknown')).toEqual([])
      const leaseUntil = (rows[0]?.status === 'unknown' && rows[0].leaseUntil) || undefined
      if (leaseUntil) seen.add(leaseUntil)
      return seen.size >= 6
    }, 15_000, 'six renewals')
    // A pruned entry that the owner's next renewal recreated would carry a new startedAt.
    expect(entryFile(registry, ws).startedAt).toBe(startedAt)
  }, 20_000)

  it('a lapsed lease never makes a locally verifiable owner dead: a frozen owner is kept and reported lease-expired', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir, leaseGraceMs: 0 })
    const { hostPid } = await leasedOwner([], dir, ws, 300)
    process.kill(hostPid, 'SIGSTOP')
    try {
      const deadline = Date.parse(entryFile(registry, ws).leaseUntil as string)
      await waitFor(() => Date.now() > deadline + 50, 5000)
      expect(await registry.listInfo()).toMatchObject([{ cwd: ws, pid: hostPid, status: 'alive', reason: 'lease-expired' }])
    } finally {
      process.kill(hostPid, 'SIGCONT')
    }
    // Thawed, it renews on its own.
    await waitFor(async () => (await registry.listInfo())[0]?.reason === null, 5000, 'a renewed lease')
  })

  it.skipIf(missing('root', 'mount') !== '')('a lease that cannot be renewed (a full disk) aborts the claim signal once it has lapsed, and not before' + missing('root', 'mount'), async () => {
    const dir = registryIn(tinyDisk(512))
    const registry = new Registry({ dir })
    const claim = await registry.claim({ cwd: tempDir(), cleanupOnExit: false }, { leaseMs: 300 })
    const fd = openSync(`${dir}/filler`, 'w')
    try {
      for (;;) writeSync(fd, Buffer.alloc(64 * 1024, 1))
    } catch (error) {
      if (!isErrno(error, 'ENOSPC')) throw error
    } finally {
      closeSync(fd)
    }
    await waitFor(() => claim.signal.aborted, 5000, 'the signal')
    // The last lease that made it to disk had lapsed before the claim was given up.
    expect(Date.now()).toBeGreaterThan(Date.parse(claim.entry.leaseUntil as string))
    expect(claim.signal.reason as RegistryError<'E_LOCKED'>).toMatchObject({ code: 'E_LOCKED', details: { lost: true } })
    expect((claim.signal.reason as Error).message).toMatch(/lease could not be renewed/)
    await claim.release()
  })
})
