// Faults of names: symlinks that resolve later, folder names that are not UTF-8, paths past the limit, and a
// wall clock that steps while a lock is awaited. Every fault is real: real symlinks, real byte names, real lock
// holders in child processes, a real clock step (libfaketime) in the waiting process.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Registry } from '../../src/index.js'
import { idOfCanonical } from '../../src/paths.js'
import { FIXTURES, running, start, until, type Child } from '../children.js'
import { refusal, runCli, sleeper, tempDir, track } from '../helpers.js'
import { missing } from './kit.js'

async function holding(dir: string, cwd: string): Promise<Child> {
  const holder = start('lock-holder.mjs', ['hold', dir, cwd])
  expect(await holder.next()).toEqual({ locked: holder.pid })
  return holder
}

async function expectHeldBy(holder: Child, dir: string, cwd: string): Promise<void> {
  const error = await refusal(new Registry({ dir }).lock(cwd))
  expect(error.code).toBe('E_LOCKED')
  expect((error.details.holder as { pid: number } | undefined)?.pid).toBe(holder.pid)
}

describe('one workspace, one lock, whatever path names it', () => {
  it('a lock taken through a symlinked parent before the folder exists still holds once the folder is cloned', async () => {
    const root = tempDir()
    const dir = join(root, 'registry')
    mkdirSync(join(root, 'real'))
    symlinkSync(join(root, 'real'), join(root, 'link'))
    const holder = await holding(dir, join(root, 'link', 'clone'))
    mkdirSync(join(root, 'real', 'clone')) // "lock, then clone into it"
    await expectHeldBy(holder, dir, join(root, 'real', 'clone'))
    await expectHeldBy(holder, dir, join(root, 'link', 'clone'))
  })

  it('a lock taken through a dangling symlink holds its target once the target is created', async () => {
    const root = tempDir()
    const dir = join(root, 'registry')
    symlinkSync(join(root, 'later'), join(root, 'shortcut'))
    const holder = await holding(dir, join(root, 'shortcut'))
    mkdirSync(join(root, 'later'))
    await expectHeldBy(holder, dir, join(root, 'later'))
  })

  it('a registry folder under a symlinked parent has one lock per workspace before and after the folder exists', async () => {
    const root = tempDir()
    const cwd = join(root, 'ws')
    mkdirSync(cwd)
    mkdirSync(join(root, 'real'))
    symlinkSync(join(root, 'real'), join(root, 'link'))
    // The holder names the registry folder through the link while it does not exist yet (its side file then creates it).
    const holder = await holding(join(root, 'link', 'reg'), cwd)
    await until(() => existsSync(join(root, 'real', 'reg')))
    await expectHeldBy(holder, join(root, 'real', 'reg'), cwd)
    await expectHeldBy(holder, join(root, 'link', 'reg'), cwd)
  })
})

/** A folder in `parent` whose name holds bytes that are not UTF-8; returns its name's bytes and Node's lossy string of it. */
function byteNamedFolder(parent: string, name: number[]): { bytes: Buffer; lossy: string } {
  const bytes = Buffer.concat([Buffer.from(`${parent}/`), Buffer.from(name)])
  mkdirSync(bytes)
  return { bytes, lossy: bytes.toString('utf8') }
}

/** Move the entry file of `from` to the id of `cwd` with `cwd` recorded: what an older writer stored for a lossy name. */
function relabel(registry: Registry, from: string, cwd: string): string {
  const entry = JSON.parse(readFileSync(registry.entryPath(from), 'utf8')) as Record<string, unknown>
  const id = idOfCanonical(cwd)
  const path = join(registry.dir, `${id}.json`)
  writeFileSync(`${path}.tmp`, `${JSON.stringify({ ...entry, id, cwd, name: 'lossy' }, null, 2)}\n`, { mode: 0o600 })
  renameSync(`${path}.tmp`, path)
  renameSync(registry.entryPath(from), `${registry.entryPath(from)}.moved`)
  return path
}

describe('folder names that are not UTF-8', () => {
  it('a workspace whose folder name is not UTF-8 is refused at write time with E_INVALID, never recorded lossily', async () => {
    const root = tempDir()
    const dir = join(root, 'registry')
    const { bytes, lossy } = byteNamedFolder(root, [0x77, 0x73, 0xff, 0xfe]) // "ws" + two bytes no UTF-8 has
    // A tool started in that folder: its process.cwd() is the lossy string.
    const child = track(spawn('sh', ['-c', `cd "$(printf 'ws\\377\\376')" && exec "$0" "$1" "$2"`, process.execPath, join(FIXTURES, 'write-here.mjs'), dir], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] }))
    let output = ''
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    await new Promise((resolve) => child.on('close', resolve))
    const result = JSON.parse(output) as { error?: string; message?: string }
    expect(result.error).toBe('E_INVALID')
    expect(result.message).toMatch(/UTF-8/)
    expect(result.message).toMatch(/[Rr]ename the folder/)
    // Through a symlink with a plain name, and as an idle row: refused the same way, nothing written.
    symlinkSync(bytes, join(root, 'plain'))
    const registry = new Registry({ dir })
    expect((await refusal(registry.write({ cwd: join(root, 'plain') }))).code).toBe('E_INVALID')
    expect((await refusal(registry.register(join(root, 'plain')))).code).toBe('E_INVALID')
    expect((await refusal(registry.write({ cwd: lossy }))).code).toBe('E_INVALID')
    expect(existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith('.json')) : []).toEqual([])
  })

  it('an entry whose cwd lost bytes in decoding is unknown (cwd-unverifiable): never pruned as gone, never reaped as an orphan', async () => {
    const root = tempDir()
    const registry = new Registry({ dir: join(root, 'registry') })
    const live = byteNamedFolder(root, [0x61, 0xff]).lossy
    const idle = byteNamedFolder(root, [0x62, 0xfe]).lossy
    mkdirSync(join(root, 'ok'))
    // Entries as an older version recorded them for these healthy workspaces: one with a running owner, one idle.
    const owner = sleeper()
    await registry.write({ cwd: join(root, 'ok'), pid: owner.pid as number })
    const liveFile = relabel(registry, join(root, 'ok'), live)
    await registry.register(join(root, 'ok'))
    const idleFile = relabel(registry, join(root, 'ok'), idle)

    const rows = await registry.listInfo({ all: true, prune: false })
    expect(rows.map((row) => [row.status, 'reason' in row ? row.reason : null]).sort()).toEqual([
      ['unknown', 'cwd-unverifiable'],
      ['unknown', 'cwd-unverifiable'],
    ])
    expect(await registry.prune()).toEqual([])
    expect((await registry.list()).map((entry) => entry.cwd).sort()).toEqual([live, idle].sort())
    const reaped = await runCli(['reap', '--orphans', '--dir', registry.dir])
    expect(reaped.code).toBe(0)
    expect(running(owner.pid as number)).toBe(true)
    expect(existsSync(liveFile) && existsSync(idleFile)).toBe(true)
  })
})

describe('cwd length', () => {
  it('a cwd over 4096 UTF-8 bytes is refused at write time with E_INVALID, and readers hold files to the same byte limit', async () => {
    const root = tempDir()
    const registry = new Registry({ dir: join(root, 'registry') })
    for (const cwd of [`/${'a'.repeat(5000)}`, `/${'é'.repeat(2100)}`]) {
      const error = await refusal(registry.write({ cwd, pid: 0 }))
      expect(error.code).toBe('E_INVALID')
      expect(error.message).toMatch(/4096 UTF-8 bytes/)
    }
    // Exactly at the limit: written, and every reader takes it back (a missing idle workspace: gone, not corrupt).
    const atLimit = `/${'é'.repeat(2047)}a`
    expect(Buffer.byteLength(atLimit)).toBe(4096)
    await registry.write({ cwd: atLimit, pid: 0 })
    expect(await registry.listInfo({ all: true, prune: false })).toMatchObject([{ status: 'gone', cwd: atLimit }])
    // One byte more, written by hand: every reader calls it corrupt, by the same unit.
    const past = `/${'é'.repeat(2048)}`
    const id = idOfCanonical(past)
    const text = readFileSync(registry.entryPath(atLimit), 'utf8').replace(JSON.stringify(atLimit), JSON.stringify(past)).replace(/"id": "[0-9a-f]+"/, `"id": "${id}"`)
    writeFileSync(join(registry.dir, `${id}.json`), text, { mode: 0o600 })
    const corrupt = (await registry.listInfo({ all: true, prune: false })).find((row) => row.status === 'corrupt')
    expect(corrupt).toMatchObject({ id, problem: expect.stringMatching(/cwd is longer than 4096 bytes/) })
  })
})

const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1'
const noFaketime = missing('faketime') || (existsSync(FAKETIME_LIB) ? '' : ` (skipped: no ${FAKETIME_LIB})`)

/**
 * A lock waiter whose wall clock steps by `offset` seconds (libfaketime) just before its second attempt, so every
 * later decision is taken after the step. Its monotonic clock stays real, as after a real step.
 */
function waiterWithClockStep(root: string, dir: string, cwd: string, waitMs: number, offset: string): Child {
  const clock = join(root, 'clock')
  writeFileSync(clock, '+0\n')
  return start('lock-waiter.mjs', [dir, cwd, String(waitMs), offset], {
    env: {
      ...process.env,
      LD_PRELOAD: FAKETIME_LIB,
      FAKETIME_TIMESTAMP_FILE: clock,
      FAKETIME_NO_CACHE: '1',
      // A real step (NTP, settimeofday) moves CLOCK_REALTIME only; Node itself aborts if its monotonic clock goes back.
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    },
  })
}

/** Lines of `waiter` up to its result ({locked} or {code}), counting its attempts. */
async function outcome(waiter: Child, maxAttempts: number): Promise<{ locked?: true; code?: string }> {
  for (;;) {
    const line = (await waiter.next()) as { attempt?: number; locked?: true; code?: string }
    if (line.attempt === undefined) return line
    if (line.attempt > maxAttempts) throw new Error(`still waiting after ${line.attempt} attempts`)
  }
}

describe('lock waits run on the monotonic clock', () => {
  it(`a wall-clock step forward does not cut a lock wait short${noFaketime}`, { skip: Boolean(noFaketime) }, async () => {
    const root = tempDir()
    const dir = join(root, 'registry')
    const cwd = join(root, 'ws')
    mkdirSync(cwd)
    const holder = await holding(dir, cwd)
    const waiter = waiterWithClockStep(root, dir, cwd, 60_000, '+7200') // two hours ahead
    expect(await waiter.next()).toBe('waiting')
    expect(await waiter.next()).toEqual({ attempt: 2 })
    // A wall-clock deadline would now lie two hours in the past: the waiter would give up instead of trying again.
    expect(await waiter.next()).toEqual({ attempt: 3 })
    holder.process.kill('SIGKILL')
    expect(await outcome(waiter, Number.POSITIVE_INFINITY)).toEqual({ locked: true })
  })

  it(`a wall-clock step back does not stall a lock wait${noFaketime}`, { skip: Boolean(noFaketime) }, async () => {
    const root = tempDir()
    const dir = join(root, 'registry')
    const cwd = join(root, 'ws')
    mkdirSync(cwd)
    await holding(dir, cwd)
    const waiter = waiterWithClockStep(root, dir, cwd, 300, '-7200') // two hours back
    expect(await waiter.next()).toBe('waiting')
    // 300 ms of backoff (5 ms doubling, jitter ≥ 0.5) is at most ~12 attempts; a wall-clock wait would go on for two hours.
    expect(await outcome(waiter, 40)).toEqual({ code: 'E_LOCKED' })
  })
})
