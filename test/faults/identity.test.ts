// Identity under faults: no /proc, other PID and time namespaces, lying timestamps, a stepped wall clock.
// Only proof decides `dead`; reap signals only a process whose start identity its owner recorded (DESIGN.md §2).
import { spawn, type ChildProcess } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { workspaceId } from '../../src/paths.js'
import { Registry } from '../../src/registry.js'
import { FIXTURES, exited, runCli, sandbox, sleeper, stdoutOf, tempDir, track, waitFor, writeDeadEntry } from '../helpers.js'
import { missing, runBehind } from './kit.js'

const OP = join(FIXTURES, 'identity-op.mjs')
// `unshare -m` with an empty tmpfs over /proc: a chroot or sandbox without /proc, as the registry sees it.
const NO_PROC = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs tmpfs /proc && exec "$@"', 'sh']
const TIME_NS = ['unshare', '-T', '--boottime', '100000']

interface Row { cwd: string; pid: number; status: string; reason: string | null }

async function listBehind(prefix: string[], dir: string): Promise<Row[]> {
  const { code, stdout, stderr } = await runBehind(prefix, OP, ['list', dir])
  expect(stderr).toBe('')
  expect(code).toBe(0)
  return JSON.parse(stdout) as Row[]
}

/** Start `identity-op.mjs own` behind `prefix`; resolves with the child and the entry it wrote. */
async function ownerBehind(prefix: string[], dir: string, cwd: string): Promise<{ child: ChildProcess; entry: Record<string, unknown> }> {
  const [command, ...rest] = [...prefix, process.execPath, OP, 'own', dir, cwd]
  const child = track(spawn(command as string, rest, { stdio: ['ignore', 'pipe', 'inherit'] }))
  const out = stdoutOf(child)
  const line = await waitFor(() => (out().includes('\n') ? out().split('\n')[0] : undefined), 10_000, 'the owner to write its entry')
  return { child, entry: JSON.parse(line) as Record<string, unknown> }
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

/** Plant a legacy `<id>-<pid>.json` file (no identity fields) and give it the mtime `mtimeMs`. */
function plantLegacy(dir: string, fields: { cwd: string; pid: number; host?: string; startedAt: string; updatedAt?: string }, mtimeMs: number): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, `${workspaceId(fields.cwd)}-${fields.pid}.json`)
  writeFileSync(path, `${JSON.stringify({ ...fields, name: 'legacy' }, null, 2)}\n`, { mode: 0o600 })
  utimesSync(path, mtimeMs / 1000, mtimeMs / 1000)
  return path
}

const HOUR = 3600_000
// The faketime package's preload library (Debian/Ubuntu multiarch path, then a plain one).
const LIBFAKETIME = [`/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/faketime/libfaketime.so.1`, '/usr/lib/faketime/libfaketime.so.1'].find((path) => existsSync(path))

describe('no /proc', () => {
  it.skipIf(missing('unshare -m') !== '')('an empty /proc makes live entries unknown, never dead: a list deletes nothing it cannot prove gone' + missing('unshare -m'), async () => {
    const { dir, ws, root } = sandbox()
    const registry = new Registry({ dir })
    const owner = sleeper()
    await registry.write({ cwd: ws, pid: owner.pid })
    const deadCwd = join(root, 'dead')
    mkdirSync(deadCwd)
    await writeDeadEntry(registry, deadCwd)

    const rows = await listBehind(NO_PROC, dir)
    expect(rows).toEqual([{ cwd: ws, pid: owner.pid, status: 'unknown', reason: 'no-proc' }])
    // kill(pid, 0) answering ESRCH is proof even without /proc: the dead entry went, the live one stayed.
    expect((await registry.list()).map((entry) => entry.cwd)).toEqual([ws])
  })

  it.skipIf(missing('unshare -m', 'mount') !== '')('under hidepid another user\'s live owner is unknown, not dead; a pid kill(pid, 0) proves gone is pruned' + missing('unshare -m', 'mount'), async () => {
    const { dir, ws, root } = sandbox()
    const registry = new Registry({ dir })
    const owner = sleeper()
    await registry.write({ cwd: ws, pid: owner.pid })
    const deadCwd = join(root, 'dead')
    mkdirSync(deadCwd)
    await writeDeadEntry(registry, deadCwd)
    // The registry belongs to `nobody`, who lists it with /proc mounted hidepid=2: root's processes are invisible.
    for (const name of ['', ...readdirSync(dir)]) chownSync(join(dir, name), 65534, 65534)
    const hidden = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t proc -o hidepid=2 proc /proc && exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"', 'sh']
    expect(await listBehind(hidden, dir)).toEqual([{ cwd: ws, pid: owner.pid, status: 'unknown', reason: 'identity-unreadable' }])
    for (const name of ['', ...readdirSync(dir)]) chownSync(join(dir, name), 0, 0)
    expect((await registry.list()).map((entry) => entry.cwd)).toEqual([ws])
  })
})

describe('another PID namespace', () => {
  it.skipIf(missing('unshare -p') !== '')('an entry written outside is kept (unknown) by a list inside a new PID namespace' + missing('unshare -p'), async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const owner = sleeper()
    await registry.write({ cwd: ws, pid: owner.pid })
    const rows = await listBehind(['unshare', '-p', '-f', '--kill-child', '--mount-proc'], dir)
    expect(rows).toEqual([{ cwd: ws, pid: owner.pid, status: 'unknown', reason: 'foreign-pid-namespace' }])
    expect(await registry.read(ws)).toMatchObject({ pid: owner.pid })
  })

  it.skipIf(missing('unshare -p') !== '')('an entry written inside a new PID namespace is kept (unknown) by a list outside' + missing('unshare -p'), async () => {
    const { dir, ws } = sandbox()
    const { child, entry } = await ownerBehind(['unshare', '-p', '-f', '--kill-child', '--mount-proc'], dir, ws)
    const rows = await new Registry({ dir }).listInfo()
    expect(rows).toMatchObject([{ cwd: ws, pid: entry.pid, status: 'unknown', reason: 'foreign-pid-namespace' }])
    expect(running(child)).toBe(true)
  })

  it.skipIf(missing('unshare -p') !== '')('a /proc of another PID namespace is never read as ours: no identity is recorded from it' + missing('unshare -p'), async () => {
    const { dir, ws } = sandbox()
    // Without --mount-proc, /proc/<pid> inside names another process of the parent namespace.
    const { entry } = await ownerBehind(['unshare', '-p', '-f', '--kill-child'], dir, ws)
    expect(entry.pid).toBe(1)
    expect(entry.pidStartTime).toBeNull()
    // Outside, and from a sibling namespace, it is another PID namespace's entry: kept, never judged.
    expect((await new Registry({ dir }).listInfo())[0]).toMatchObject({ cwd: ws, status: 'unknown', reason: 'foreign-pid-namespace' })
    expect(await listBehind(['unshare', '-p', '-f', '--kill-child'], dir)).toMatchObject([{ cwd: ws, status: 'unknown' }])
  })
})

describe('another time namespace', () => {
  it.skipIf(missing('unshare -T') !== '')('records timeNamespace, and an owner in a shifted time namespace is alive (offset-corrected), not pid-reused' + missing('unshare -T'), async () => {
    const { dir, ws } = sandbox()
    const { child, entry } = await ownerBehind(TIME_NS, dir, ws)
    expect(entry.timeNamespace).toMatch(/^\d+$/)
    expect(entry.timeNamespace).not.toBe(/\d+/.exec(readlinkSync('/proc/self/ns/time'))?.[0])
    const registry = new Registry({ dir })
    expect(await registry.listInfo()).toMatchObject([{ cwd: ws, status: 'alive' }])
    expect(await registry.read(ws)).toMatchObject({ pid: child.pid })
  })

  it.skipIf(missing('unshare -T') !== '')('a list inside a shifted time namespace keeps a live owner written outside (alive)' + missing('unshare -T'), async () => {
    const { dir, ws } = sandbox()
    const owner = sleeper()
    await new Registry({ dir }).write({ cwd: ws, pid: owner.pid })
    expect(await listBehind(TIME_NS, dir)).toEqual([{ cwd: ws, pid: owner.pid, status: 'alive', reason: null }])
    expect(existsSync(new Registry({ dir }).entryPath(ws))).toBe(true)
  })

  it('start ticks from a time namespace whose offset cannot be read (a planted entry naming a namespace no process is in) make the entry unknown (foreign-time-namespace), never dead; reap refuses', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const owner = sleeper()
    const written = await registry.write({ cwd: ws, pid: owner.pid })
    // A namespace no process is in any more (the owner was checkpointed and restored elsewhere, say).
    const path = registry.entryPath(ws)
    const shifted = { ...written, pidStartTime: String(Number(written.pidStartTime) + 10_000_000), timeNamespace: '4026999999' }
    writeFileSync(path, `${JSON.stringify(shifted, null, 2)}\n`)
    expect(await registry.listInfo()).toMatchObject([{ cwd: ws, status: 'unknown', reason: 'foreign-time-namespace' }])
    await expect(registry.reap(ws, { graceMs: 0 })).rejects.toMatchObject({ code: 'E_PERM' })
    expect(running(owner)).toBe(true)
    expect(existsSync(path)).toBe(true)
  })
})

describe('legacy entries whose timestamps lie', () => {
  it('a future updatedAt never makes a later stranger the owner: the entry is pid-reused, so there is no orphan to reap and the stranger is never signalled', async () => {
    const { dir, root } = sandbox()
    const stranger = sleeper()
    await waitFor(() => existsSync(`/proc/${stranger.pid}/stat`))
    // Written an hour ago (mtime) by a writer that labelled local time as UTC, five hours ahead; the folder is gone.
    const future = new Date(Date.now() + 5 * HOUR).toISOString()
    plantLegacy(dir, { cwd: join(root, 'gone'), pid: stranger.pid as number, host: hostname(), startedAt: future, updatedAt: future }, Date.now() - HOUR)
    const registry = new Registry({ dir })
    expect(await registry.orphans()).toEqual([])
    expect(await registry.list()).toEqual([])
    expect(readdirSync(dir).filter((name) => name.endsWith('.json'))).toEqual([])
    expect(running(stranger)).toBe(true)
  })

  it('a legacy entry dated wholly in the future is unknown (clock-skew) and kept', async () => {
    const { dir, ws } = sandbox()
    const stranger = sleeper()
    const future = Date.now() + 5 * HOUR
    plantLegacy(dir, { cwd: ws, pid: stranger.pid as number, startedAt: new Date(future).toISOString() }, future)
    const registry = new Registry({ dir })
    expect(await registry.listInfo()).toMatchObject([{ cwd: ws, status: 'unknown', reason: 'clock-skew' }])
    expect(await registry.list()).toHaveLength(1)
  })

  it('reap never signals an owner known only by a clock comparison (no recorded start identity); the entry is kept', async () => {
    const { dir, root } = sandbox()
    const owner = sleeper()
    await waitFor(() => existsSync(`/proc/${owner.pid}/stat`))
    // A genuine legacy orphan: written after its owner started, its folder since deleted.
    plantLegacy(dir, { cwd: join(root, 'gone'), pid: owner.pid as number, startedAt: new Date().toISOString() }, Date.now())
    const registry = new Registry({ dir })
    const [orphan] = await registry.orphans()
    expect(orphan).toMatchObject({ pid: owner.pid, pidStartTime: null, status: 'orphan' })
    await expect(registry.reap(orphan as never, { graceMs: 0 })).rejects.toMatchObject({ code: 'E_PERM' })
    expect(running(owner)).toBe(true)
    expect(await registry.orphans()).toHaveLength(1)
  })

  it('wsreg reap --orphans refuses an orphan known only by a clock comparison, reports it, and still reaps the rest', async () => {
    const { dir, root } = sandbox()
    const legacyOwner = sleeper()
    const recordedOwner = sleeper()
    await waitFor(() => existsSync(`/proc/${legacyOwner.pid}/stat`))
    plantLegacy(dir, { cwd: join(root, 'gone-a'), pid: legacyOwner.pid as number, startedAt: new Date().toISOString() }, Date.now())
    const recordedCwd = join(root, 'gone-z')
    mkdirSync(recordedCwd)
    await new Registry({ dir }).write({ cwd: recordedCwd, name: 'z-recorded', pid: recordedOwner.pid })
    rmSync(recordedCwd, { recursive: true })
    const { code, stdout, stderr } = await runCli(['--dir', dir, 'reap', '--orphans', '--grace', '5000'])
    expect(stderr).toContain('records no start identity')
    expect(stdout).toContain('z-recorded')
    expect(code).toBe(1)
    expect(await exited(recordedOwner)).toMatchObject({ signal: 'SIGTERM' })
    expect(running(legacyOwner)).toBe(true)
  })

  it('migrating another host\'s legacy file records none of this machine\'s identity (no start time, no boot id)', async () => {
    const { dir, ws } = sandbox()
    const local = sleeper()
    const now = Date.now()
    plantLegacy(dir, { cwd: ws, pid: local.pid as number, host: 'elsewhere.example', startedAt: new Date(now).toISOString() }, now)
    const registry = new Registry({ dir })
    expect(await registry.listInfo()).toMatchObject([{ cwd: ws, status: 'unknown', reason: 'foreign-host' }])
    const migrated = JSON.parse(readFileSync(registry.entryPath(ws), 'utf8'))
    expect(migrated).toMatchObject({ version: 1, host: 'elsewhere.example', pid: local.pid, pidStartTime: null, bootId: null })
  })
})

describe('reap compares the recorded identity before every signal', () => {
  it.skipIf(missing('unshare -T') !== '')('reap stops an owner in a shifted time namespace: its recorded start is compared through the offsets' + missing('unshare -T'), async () => {
    const { dir, ws } = sandbox()
    const { child } = await ownerBehind(TIME_NS, dir, ws)
    expect(await new Registry({ dir }).reap(ws, { graceMs: 5000 })).toMatchObject({ outcome: 'terminated', removed: true })
    expect(await exited(child)).toMatchObject({ signal: 'SIGTERM' })
  })

  it.skipIf(missing('unshare -p') !== '')('a pid reused during the grace is never sent SIGKILL (the stranger took the owner\'s pid after SIGTERM)' + missing('unshare -p'), async () => {
    const { dir, ws } = sandbox()
    // Inside a fresh PID namespace the next pid can be chosen (ns_last_pid), so the reuse is real, not mocked.
    const { stdout, stderr } = await runBehind(['unshare', '-p', '-f', '--kill-child', '--mount-proc'], OP, ['reuse', dir, ws])
    expect(stderr).toBe('')
    const report = JSON.parse(stdout) as { result: { outcome: string }; reused: boolean; strangerAlive: boolean }
    expect(report.reused).toBe(true)
    expect(report.result.outcome).toBe('terminated')
    expect(report.strangerAlive).toBe(true)
  }, 20_000)
})

describe('a pid reused during a judgement', () => {
  it.skipIf(missing('unshare -p') !== '')('an entry written after its pid was probed is probed again before it is called dead (the new owner is alive)' + missing('unshare -p'), async () => {
    const { dir, ws } = sandbox()
    const ws2 = tempDir()
    // Inside a fresh PID namespace the next pid can be chosen (ns_last_pid), so the reuse is real, not mocked.
    const { stdout, stderr } = await runBehind(['unshare', '-p', '-f', '--kill-child', '--mount-proc'], OP, ['stale', dir, ws, ws2])
    expect(stderr).toBe('')
    const report = JSON.parse(stdout) as { reused: boolean; first: { status: string }; second: { status: string } }
    expect(report.reused).toBe(true)
    expect(report.first).toMatchObject({ status: 'dead', reason: 'exited' })
    expect(report.second).toMatchObject({ status: 'alive' })
  }, 20_000)
})

describe('a stepped wall clock', () => {
  const noFaketime = missing('faketime') || (LIBFAKETIME ? '' : ' (skipped: no libfaketime.so.1 here — install faketime, see .ci/run)')
  it.skipIf(noFaketime !== '')('reap\'s grace runs on a monotonic clock: stepping the clock back a day mid-grace still ends in SIGKILL' + noFaketime, async () => {
    const { dir, ws } = sandbox()
    const stubborn = track(spawn(process.execPath, [OP, 'stubborn'], { stdio: ['ignore', 'pipe', 'inherit'] }))
    const out = stdoutOf(stubborn)
    await waitFor(() => out().includes('ready'))
    await new Registry({ dir }).write({ cwd: ws, pid: stubborn.pid })
    const clock = join(tempDir(), 'faketime')
    writeFileSync(clock, '+0\n')
    const env = {
      ...process.env,
      // The library rather than the `faketime` command: its FAKETIME variable would override the timestamp file.
      LD_PRELOAD: LIBFAKETIME,
      FAKETIME_TIMESTAMP_FILE: clock,
      FAKETIME_NO_CACHE: '1',
      // A real clock step moves the wall clock only; the monotonic clock keeps going.
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    }
    const reaping = runBehind([], OP, ['reap', dir, ws, '1000'], { env })
    await waitFor(() => out().includes('term'), 10_000, 'SIGTERM to reach the stubborn owner')
    writeFileSync(clock, '-1d\n')
    const { stdout } = await reaping
    expect(JSON.parse(stdout)).toMatchObject({ outcome: 'killed', removed: true })
    expect(await exited(stubborn)).toMatchObject({ signal: 'SIGKILL' })
  }, 20_000)
})
