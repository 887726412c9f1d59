import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Registry, type EntryInfo, type EntryRow } from '../src/index.js'
import { usePlatform, type Platform } from '../src/identity.js'
import { createDarwinPlatform, parseLstart, parsePsStarts } from '../src/ps.js'
import { FIXTURES, sandbox, start, until } from './children.js'
import { deadPid, exited, sleeper } from './helpers.js'

const utc = (...parts: [number, number, number, number, number, number]) => Date.UTC(...parts) / 1000

describe('parseLstart (macOS seam, run on Linux)', () => {
  it('reads a space-padded day and a two-digit day as seconds since the epoch (UTC)', () => {
    expect(parseLstart('Wed Dec  2 15:35:00 2026')).toBe(utc(2026, 11, 2, 15, 35, 0))
    expect(parseLstart('Sat Dec 12 00:00:59 2026')).toBe(utc(2026, 11, 12, 0, 0, 59))
  })

  it.each([
    ['a localized line', 'Mi  2 Dez 15:35:00 2026'],
    ['a weekday that does not fit the date', 'Thu Dec  2 15:35:00 2026'],
    ['a date that does not exist', 'Mon Feb 30 10:00:00 2026'],
    ['an hour past 23', 'Wed Dec  2 24:00:00 2026'],
    ['a 12-hour clock', 'Wed Dec  2 3:35:00 PM 2026'],
    ['trailing words', 'Wed Dec  2 15:35:00 2026 CET'],
    ['nothing', ''],
  ])('refuses %s', (_what, text) => {
    expect(parseLstart(text)).toBeNull()
  })
})

describe('parsePsStarts (macOS seam, run on Linux)', () => {
  it('reads right-aligned pids, ignores lines without a pid, and hides a pid whose start cannot be read', () => {
    const text = ['    1 Wed Dec  2 15:35:00 2026', '99999 Sat Dec 12 00:00:59 2026', 'garbage', '', '  512 Mi  2 Dez 15:35:00 2026', '  77'].join('\n')
    expect([...parsePsStarts(text)]).toEqual([
      [1, utc(2026, 11, 2, 15, 35, 0)],
      [99999, utc(2026, 11, 12, 0, 0, 59)],
      [512, null],
      [77, null],
    ])
  })

  it('hides a pid listed twice with two starts', () => {
    expect(parsePsStarts('  5 Wed Dec  2 15:35:00 2026\n  5 Wed Dec  2 15:35:01 2026').get(5)).toBeNull()
  })
})

/** A `ps` on PATH printing macOS-format output for a fixture of pids, counting its runs. */
function fakePs(root: string) {
  const bin = join(root, 'bin')
  mkdirSync(bin, { recursive: true })
  const ps = join(bin, 'ps')
  writeFileSync(ps, `#!/bin/sh\nexec "${process.execPath}" "${join(FIXTURES, 'ps-macos.mjs')}" "$@"\n`)
  chmodSync(ps, 0o755)
  const fixture = join(root, 'ps-fixture.json')
  const log = join(root, 'ps-runs.log')
  writeFileSync(fixture, '{}')
  return {
    /** Set what ps shows: pid → start seconds, or "raw:<text>". */
    show(starts: Record<number, number | string>) {
      writeFileSync(fixture, JSON.stringify(starts))
    },
    runs(): string[] {
      return existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : []
    },
    /** The environment of a user in zone `tz` and locale `lang`, with this ps first on PATH. */
    env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
      return { PATH: `${bin}:${process.env.PATH}`, FAKE_PS_FIXTURE: fixture, FAKE_PS_LOG: log, ...extra }
    },
  }
}

let undo: (() => void) | undefined
afterEach(() => {
  undo?.()
  undo = undefined
})
/** An entry of a process that has ended since it was written (written while it ran, then SIGKILLed). */
async function endedEntry(registry: Registry, cwd: string): Promise<void> {
  const child = sleeper()
  await registry.write({ cwd, pid: child.pid as number })
  child.kill('SIGKILL')
  await exited(child)
}

/** [cwd, status, reason] of each row, sorted by cwd. */
const verdicts = (rows: EntryInfo[]) => (rows as EntryRow[]).map((row) => [row.cwd, row.status, row.reason]).sort((a, b) => String(a[0]).localeCompare(String(b[0])))

/** A live child recorded in a fresh registry by the macOS platform, its ps showing it started 2026-12-02 08:00:00 UTC. */
async function recordedChild() {
  const { root, dir, cwd } = sandbox()
  const ps = fakePs(root)
  const child = start('child.mjs', [])
  await child.next()
  ps.show({ [child.pid]: utc(2026, 11, 2, 8, 0, 0) })
  use(createDarwinPlatform({ env: ps.env() }))
  const registry = new Registry({ dir })
  await registry.write({ cwd, pid: child.pid })
  return { root, dir, cwd, ps, child, registry }
}

function use(platform: Platform): Platform {
  undo?.()
  undo = usePlatform(platform)
  return platform
}

describe('createDarwinPlatform with a ps script on PATH (macOS seam, run on Linux)', () => {
  it('takes a live pid’s start from ps -p, and calls a pid ps does not list and kill(pid, 0) cannot find gone', async () => {
    const { root } = sandbox()
    const ps = fakePs(root)
    const child = start('child.mjs', [])
    await child.next()
    ps.show({ [child.pid]: utc(2026, 11, 2, 15, 35, 0) })
    const darwin = createDarwinPlatform({ env: ps.env() })
    expect(darwin.inspect(child.pid)).toEqual({ state: 'running', startTime: String(utc(2026, 11, 2, 15, 35, 0)), startedAtMs: utc(2026, 11, 2, 15, 35, 0) * 1000 })
    expect(darwin.inspect(await deadPid()).state).toBe('gone')
    expect(darwin.hasStartIdentity).toBe(true)
    expect(darwin.bootId()).toBeNull()
    expect(ps.runs()).toEqual([`-o pid=,lstart= -p ${child.pid}`, expect.stringMatching(/^-o pid=,lstart= -p \d+$/)])
  })

  it('runs ps exactly once for a list of 50 entries, through the real judge (the 50 writes take their token from a stub)', async () => {
    const { root, dir } = sandbox()
    const ps = fakePs(root)
    const children = [start('child.mjs', []), start('child.mjs', [])]
    for (const child of children) await child.next()
    const starts = [utc(2026, 11, 2, 9, 0, 0), utc(2026, 11, 2, 9, 0, 1)]
    ps.show({ [children[0]!.pid]: starts[0]!, [children[1]!.pid]: starts[1]! })
    const darwin = createDarwinPlatform({ env: ps.env() })
    // Writes are not what is counted: each would run its own `ps -p`, so they read the same starts from a stub.
    use({ ...darwin, inspect: (pid) => ({ state: 'running', startTime: String(starts[pid === children[0]!.pid ? 0 : 1]), startedAtMs: null }) })
    const registry = new Registry({ dir })
    for (let i = 0; i < 50; i++) {
      const cwd = join(root, `ws-${String(i).padStart(2, '0')}`)
      mkdirSync(cwd)
      await registry.write({ cwd, pid: children[i % 2]!.pid })
    }
    use(darwin)
    const before = ps.runs().length
    const rows = await registry.listInfo()
    expect(rows).toHaveLength(50)
    expect(new Set(rows.map((row) => row.status))).toEqual(new Set(['alive']))
    expect(ps.runs().slice(before)).toEqual(['-axo pid=,lstart='])
    expect(rows.map((row) => row.status === 'alive' && row.pidStartTime)).toContain(String(starts[0]))
  })

  it('runs ps once for a watcher’s first snapshot of 20 entries, and once per sweep', async () => {
    const { root, dir } = sandbox()
    const ps = fakePs(root)
    const child = start('child.mjs', [])
    await child.next()
    ps.show({ [child.pid]: utc(2026, 11, 2, 9, 0, 0) })
    const darwin = createDarwinPlatform({ env: ps.env() })
    use({ ...darwin, inspect: () => ({ state: 'running', startTime: String(utc(2026, 11, 2, 9, 0, 0)), startedAtMs: null }) })
    const registry = new Registry({ dir })
    for (let i = 0; i < 20; i++) {
      const cwd = join(root, `ws-${i}`)
      mkdirSync(cwd)
      await registry.write({ cwd, pid: child.pid })
    }
    use(darwin)
    const before = ps.runs().length
    const watcher = new Registry({ dir }).watch({ intervalMs: 100 })
    try {
      const ready = await new Promise<{ entries: unknown[] }>((resolve) => watcher.once('ready', resolve))
      expect(ready.entries).toHaveLength(20)
      expect(ps.runs().length - before).toBe(1)
      await until(() => ps.runs().length - before >= 3)
      // Every run is a whole-table snapshot: none is a per-entry `ps -p`.
      expect(new Set(ps.runs().slice(before))).toEqual(new Set(['-axo pid=,lstart=']))
    } finally {
      await watcher.close()
    }
  })

  it('keeps the same token when the user’s zone and locale change between two listings', async () => {
    const { root, dir, cwd } = sandbox()
    const ps = fakePs(root)
    const child = start('child.mjs', [])
    await child.next()
    ps.show({ [child.pid]: utc(2026, 6, 1, 23, 30, 0) }) // a start that is another day in most zones
    use(createDarwinPlatform({ env: ps.env({ TZ: 'America/Los_Angeles', LANG: 'de_DE.UTF-8', LC_ALL: 'de_DE.UTF-8' }) }))
    const written = await new Registry({ dir }).write({ cwd, pid: child.pid })
    expect(written.pidStartTime).toBe(String(utc(2026, 6, 1, 23, 30, 0)))
    use(createDarwinPlatform({ env: ps.env({ TZ: 'Australia/Lord_Howe', LC_TIME: 'de_DE.UTF-8' }) }))
    expect(verdicts(await new Registry({ dir }).listInfo())).toEqual([[cwd, 'alive', null]])
  })

  it('tells a restart within a DST fall-back hour from the first start, though both read 01:30 in New York', async () => {
    const { root, dir, cwd } = sandbox()
    const ps = fakePs(root)
    const child = start('child.mjs', [])
    await child.next()
    const env = ps.env({ TZ: 'America/New_York' })
    ps.show({ [child.pid]: utc(2026, 10, 1, 5, 30, 0) }) // 01:30 EDT
    use(createDarwinPlatform({ env }))
    const registry = new Registry({ dir })
    await registry.write({ cwd, pid: child.pid })
    expect((await registry.listInfo())[0]!.status).toBe('alive')
    ps.show({ [child.pid]: utc(2026, 10, 1, 6, 30, 0) }) // 01:30 EST, an hour later
    expect(verdicts(await registry.listInfo({ all: true, prune: false }))).toEqual([[cwd, 'dead', 'pid-reused']])
  })

  it('prunes an entry whose pid now shows another start (pid-reused)', async () => {
    const { cwd, ps, child, registry } = await recordedChild()
    ps.show({ [child.pid]: utc(2026, 11, 2, 8, 0, 1) })
    expect(await registry.prune()).toMatchObject([{ cwd, reason: 'pid-reused' }])
  })

  it.each([
    ['a garbage line for the pid', { raw: 'raw:??? garbage' }, {}],
    ['a localized line (a ps that ignores LC_ALL)', null, { FAKE_PS_IGNORE_LOCALE: '1' }],
  ])('keeps an entry as unknown on %s, never dead', async (_what, line, extra) => {
    const { dir, cwd, ps, child } = await recordedChild()
    ps.show({ [child.pid]: line ? line.raw : utc(2026, 11, 2, 8, 0, 0) })
    use(createDarwinPlatform({ env: ps.env(extra) }))
    const rows = await new Registry({ dir }).listInfo()
    expect(verdicts(rows)).toEqual([[cwd, 'unknown', 'identity-unreadable']])
  })

  it('calls a live process that ps did not list (born after the snapshot) unknown, and an absent one that kill(pid, 0) cannot find dead', async () => {
    const { root, dir } = sandbox()
    const ps = fakePs(root)
    const child = start('child.mjs', [])
    await child.next()
    const late = join(root, 'late')
    const gone = join(root, 'gone')
    mkdirSync(late)
    mkdirSync(gone)
    use(createDarwinPlatform({ env: ps.env() }))
    const registry = new Registry({ dir })
    await registry.write({ cwd: late, pid: child.pid })
    await endedEntry(registry, gone)
    ps.show({}) // the snapshot lists neither
    const rows = await registry.listInfo({ all: true, prune: false })
    expect(verdicts(rows)).toEqual([
      [gone, 'dead', 'exited'],
      [late, 'unknown', 'identity-unreadable'],
    ])
  })

  it.each([
    ['exits nonzero', (ps: ReturnType<typeof fakePs>) => createDarwinPlatform({ env: ps.env({ FAKE_PS_EXIT: '2' }) })],
    ['is missing', (ps: ReturnType<typeof fakePs>) => createDarwinPlatform({ env: ps.env(), ps: join(ps.env().FAKE_PS_FIXTURE as string, '..', 'no-such-ps') })],
  ])('falls back to kill(pid, 0) when ps %s: no identity, a live entry kept, only ESRCH proves an end', async (_what, make) => {
    const { root, dir, cwd, ps, child, registry } = await recordedChild()
    const gone = join(root, 'gone')
    mkdirSync(gone)
    await endedEntry(registry, gone)
    const broken = use(make(ps))
    const rows = await new Registry({ dir }).listInfo({ all: true, prune: false })
    expect(broken.hasStartIdentity).toBe(false)
    expect(verdicts(rows)).toEqual([
      [gone, 'dead', 'exited'],
      [cwd, 'unknown', 'identity-unreadable'],
    ])
    expect(broken.inspect(child.pid)).toEqual({ state: 'running', startTime: null, startedAtMs: null })
  })
})
