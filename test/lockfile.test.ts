import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Registry, diagnose } from '../src/index.js'
import { lockState, useLockMechanism } from '../src/lock.js'
import { createFileLockMechanism, LOCKS_DIR, lockOpenFlags, openWithExlock, type LockMechanism } from '../src/lockfile.js'
import { workspaceId } from '../src/paths.js'
// @ts-expect-error plain JS fixture shared with child processes
import { flockOpen } from './fixtures/flock-primitive.mjs'
import { running, sandbox, start, until } from './children.js'
import { refusal } from './helpers.js'
import { missing, readOnlyView } from './faults/kit.js'

type Primitive = (path: string, create: boolean) => number | null
const primitive = (options: { between?: (path: string, fd: number) => void } = {}): Primitive => flockOpen(options)
const mechanismWith = (open: Primitive = primitive()): LockMechanism => createFileLockMechanism(open)

describe('lockOpenFlags', () => {
  // O_RDWR 0x2 | O_NONBLOCK 0x4 | O_EXLOCK 0x20 | O_NOFOLLOW 0x100 | O_CREAT 0x200, from each system's <sys/fcntl.h>.
  it.each(['darwin', 'freebsd', 'openbsd', 'netbsd'])('%s: O_RDWR|O_NONBLOCK|O_EXLOCK|O_NOFOLLOW|O_CREAT as in its <sys/fcntl.h>', (platform) => {
    expect(lockOpenFlags(platform)).toBe(0x326)
    expect(lockOpenFlags(platform, false)).toBe(0x126)
  })

  it('asks for an exclusive (not shared) lock without blocking, and leaves O_CLOEXEC to libuv', () => {
    const flags = lockOpenFlags('darwin') as number
    expect(flags & 0x20).toBe(0x20) // O_EXLOCK
    expect(flags & 0x10).toBe(0) // O_SHLOCK
    expect(flags & 0x4).toBe(0x4) // O_NONBLOCK
    expect(flags & 0x01000000).toBe(0) // macOS O_CLOEXEC: libuv's uv__fs_open adds it
  })

  it.each(['linux', 'win32', 'sunos', 'aix', 'android'])('%s: null (its own lock, or none)', (platform) => {
    expect(lockOpenFlags(platform)).toBeNull()
  })

  it('the real O_EXLOCK primitive refuses a platform without the flag rather than open with the wrong bits', () => {
    expect(() => openWithExlock('linux')('/nonexistent', true)).toThrow(expect.objectContaining({ code: 'E_UNSUPPORTED' }))
  })
})

describe('lock-file protocol (macOS seam, run on Linux; O_EXLOCK open replaced by open + flock(1))', () => {
  function lockFile(): { dir: string; path: string; mechanism: LockMechanism } {
    const { dir, cwd } = sandbox()
    const mechanism = mechanismWith()
    return { dir, path: mechanism.address(dir, workspaceId(cwd)), mechanism }
  }

  it('lives at <registry>/.locks/<id>, and a name lock at .locks/name-<hash>', () => {
    const { dir, cwd } = sandbox()
    const mechanism = mechanismWith()
    expect(mechanism.address(dir, workspaceId(cwd))).toBe(join(dir, LOCKS_DIR, workspaceId(cwd)))
    expect(mechanism.address(dir, 'name\0api')).toMatch(new RegExp(`^${join(dir, LOCKS_DIR)}/name-[0-9a-f]{32}$`))
  })

  it('refuses a second open of the lock in the same process, and frees it (file unlinked) on release', async () => {
    const { path, mechanism } = lockFile()
    const letGo = await mechanism.take(path)
    expect(letGo).toBeTypeOf('function')
    expect(statSync(join(path, '..')).mode & 0o777).toBe(0o700)
    expect(await mechanismWith().take(path)).toBeNull()
    expect(await mechanism.take(path)).toBeNull()
    await letGo?.()
    expect(existsSync(path)).toBe(false)
    const again = await mechanism.take(path)
    expect(again).toBeTypeOf('function')
    await again?.()
  })

  it('keeps the lock when another descriptor of the same file is opened and closed (flock, not fcntl, semantics)', async () => {
    const { path, mechanism } = lockFile()
    const letGo = await mechanism.take(path)
    closeSync(openSync(path, 'r'))
    expect(await mechanism.take(path)).toBeNull()
    expect(await mechanism.state(path)).toBe('held')
    await letGo?.()
  })

  it('is free at once when the holder is SIGKILLed, though its child lives on (real SIGKILL; the descriptor is not inherited)', async () => {
    const { root, dir, cwd } = sandbox()
    const sleepers = join(root, 'sleepers')
    const holder = start('flock-seam.mjs', ['lock-holder.mjs', 'hold', dir, cwd], { env: { ...process.env, SPAWN_SLEEPER: sleepers } })
    expect(await holder.next()).toEqual({ locked: holder.pid })
    const sleeper = Number(readFileSync(sleepers, 'utf8').trim())
    const mechanism = mechanismWith()
    const path = mechanism.address(dir, workspaceId(cwd))
    try {
      expect(await mechanism.take(path)).toBeNull()
      holder.process.kill('SIGKILL')
      await holder.ended
      expect(running(sleeper)).toBe(true)
      expect(existsSync(path)).toBe(true) // a killed holder leaves its file…
      const letGo = await mechanism.take(path) // …which the next holder takes over at once, without a staleness guess
      expect(letGo).toBeTypeOf('function')
      await letGo?.()
      expect(existsSync(path)).toBe(false)
    } finally {
      process.kill(sleeper, 'SIGKILL')
    }
  })

  it('retries when the holder unlinks the file between our open and our lock, and then holds the file the path names', async () => {
    const { path, mechanism } = lockFile()
    const first = await mechanism.take(path)
    let raced = false
    const late = mechanismWith(
      primitive({
        between: () => {
          if (raced) return
          raced = true
          void first?.() // the holder lets go (unlink, then close) after our open, before our lock
        },
      }),
    )
    const letGo = await late.take(path)
    expect(raced).toBe(true)
    expect(letGo).toBeTypeOf('function')
    // We hold the inode the path names now, not the unlinked one: a third party is refused.
    expect(await mechanismWith().take(path)).toBeNull()
    await letGo?.()
  })

  it('never lets two hold at once when the file is unlinked and re-created by another holder between open and lock', async () => {
    const { path, mechanism } = lockFile()
    const first = await mechanism.take(path)
    let third: (() => Promise<void>) | null = null
    let raced = false
    const late = mechanismWith(
      primitive({
        between: () => {
          if (raced) return
          raced = true
          void first?.()
          // A third party takes the lock on a new inode at the same path before our lock lands on the old one.
          const fd = primitive()(path, true) as number
          third = async () => {
            rmSync(path)
            closeSync(fd)
          }
        },
      }),
    )
    expect(await late.take(path)).toBeNull()
    expect(raced).toBe(true)
    expect(third).not.toBeNull()
    expect(await mechanism.state(path)).toBe('held')
    await (third as unknown as () => Promise<void>)()
  })

  it('tells held from free without keeping the lock, and leaves the file alone', async () => {
    const { path, mechanism } = lockFile()
    expect(await mechanism.state(path)).toBe('free')
    expect(existsSync(path)).toBe(false)
    const letGo = await mechanism.take(path)
    expect(await mechanism.state(path)).toBe('held')
    expect(await mechanism.take(path)).toBeNull()
    await letGo?.()
    expect(await mechanism.state(path)).toBe('free')
  })

  it('sweeps a killed holder’s file only after taking its lock, never a held one, and nothing on a dry run', async () => {
    const { dir, cwd } = sandbox()
    const mechanism = mechanismWith()
    const killed = start('flock-seam.mjs', ['lock-holder.mjs', 'hold', dir, cwd])
    await killed.next()
    killed.process.kill('SIGKILL')
    await killed.ended
    const other = join(dir, '..', 'other')
    const { mkdirSync } = await import('node:fs')
    mkdirSync(other)
    const living = start('flock-seam.mjs', ['lock-holder.mjs', 'hold', dir, other])
    await living.next()
    const leftover = mechanism.address(dir, workspaceId(cwd))
    const held = mechanism.address(dir, workspaceId(other))
    expect(mechanism.sweep?.(dir, true)).toEqual([leftover])
    expect(existsSync(leftover)).toBe(true)
    expect(mechanism.sweep?.(dir, false)).toEqual([leftover])
    expect(readdirSync(join(dir, LOCKS_DIR))).toEqual([workspaceId(other)])
    expect(existsSync(held)).toBe(true)
    expect(await mechanism.state(held)).toBe('held')
  })
})

describe('Registry with the lock-file mechanism (macOS seam, run on Linux; O_EXLOCK open replaced by open + flock(1))', () => {
  let undo: () => void
  beforeEach(() => {
    undo = useLockMechanism(mechanismWith())
  })
  afterEach(() => undo())

  it('lock() refuses a second locker in the same process with its pid, and frees it on release', async () => {
    const { dir, cwd } = sandbox()
    const release = await new Registry({ dir }).lock(cwd)
    const error = await refusal(new Registry({ dir }).lock(join(cwd, '.')))
    expect(error.code).toBe('E_LOCKED')
    expect((error.details.holder as { pid: number }).pid).toBe(process.pid)
    expect(await lockState(dir, workspaceId(cwd))).toBe('held')
    await release()
    expect(await lockState(dir, workspaceId(cwd))).toBe('free')
    expect(readdirSync(join(dir, LOCKS_DIR))).toEqual([])
    expect(existsSync(join(dir, `${workspaceId(cwd)}.lock`))).toBe(false)
  })

  it('lock() names a holder in another process, and is free at once when it is SIGKILLed', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const holder = start('flock-seam.mjs', ['lock-holder.mjs', 'hold', dir, cwd])
    await holder.next()
    const error = await refusal(registry.lock(cwd))
    expect((error.details.holder as { pid: number }).pid).toBe(holder.pid)
    holder.process.kill('SIGKILL')
    await holder.ended
    const release = await registry.lock(cwd)
    await release()
  })

  it('claim() is exclusive, and a uniqueName claim leaves no name lock file behind', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const claim = await registry.claim({ cwd, name: 'api' }, { uniqueName: true })
    const error = await refusal(new Registry({ dir }).claim({ cwd }))
    expect(error.code).toBe('E_LOCKED')
    expect(readdirSync(join(dir, LOCKS_DIR))).toEqual([workspaceId(cwd)])
    await claim.release()
    expect(readdirSync(join(dir, LOCKS_DIR))).toEqual([])
  })

  it.skipIf(missing('mount'))(`refuses to lock a read-only registry with E_UNSUPPORTED and says why, yet lists it${missing('mount')}`, async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    await registry.register(cwd, 'ws')
    const view = readOnlyView(dir)
    const error = await refusal(new Registry({ dir: view }).lock(cwd))
    expect(error.code).toBe('E_UNSUPPORTED')
    expect(error.message).toMatch(/EROFS.*must be writable/)
    expect(await lockState(view, workspaceId(cwd))).toBe('free')
    expect((await new Registry({ dir: view }).list()).map((entry) => entry.name)).toEqual(['ws'])
  })

  it('lists, prunes and diagnoses a folder holding .locks/: list leaves lock files alone, prune removes a killed holder’s', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    await registry.register(cwd, 'ws')
    const holder = start('flock-seam.mjs', ['lock-holder.mjs', 'hold', dir, cwd])
    await holder.next()
    holder.process.kill('SIGKILL')
    await holder.ended
    const leftover = join(dir, LOCKS_DIR, workspaceId(cwd))
    expect((await registry.list()).map((entry) => entry.name)).toEqual(['ws'])
    expect((await registry.listInfo({ all: true })).map((row) => row.status)).toEqual(['idle'])
    expect(existsSync(leftover)).toBe(true)
    const findings = (await diagnose(registry)).findings.map((finding) => finding.kind)
    expect(findings).not.toContain('corrupt')
    const report = await registry.prune()
    expect(report).toContainEqual({ id: workspaceId(cwd), cwd: null, path: leftover, reason: 'stale-lock' })
    expect(existsSync(leftover)).toBe(false)
    await until(() => !existsSync(join(dir, `${workspaceId(cwd)}.lock`)))
  })
})
