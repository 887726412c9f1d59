import { spawn } from 'node:child_process'
import {
  chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync,
} from 'node:fs'
import { lutimes } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { serializeEntry } from '../src/entry.js'
import { workspaceId } from '../src/paths.js'
import { Registry } from '../src/registry.js'
import { FIXTURES, exited, runCli, sandbox, stdoutOf, track } from './helpers.js'

const isRoot = process.getuid?.() === 0
const mode = (path: string) => lstatSync(path).mode & 0o7777

/** A snapshot of every file under `root` except the registry folder: name → bytes (or link target). */
function outside(root: string, skip: string): Map<string, string> {
  const seen = new Map<string, string>()
  const walk = (folder: string) => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name)
      if (path === skip) continue
      const stat = lstatSync(path)
      if (stat.isDirectory()) walk(path)
      else seen.set(path, stat.isSymbolicLink() ? `link` : readFileSync(path, 'latin1'))
    }
  }
  walk(root)
  return seen
}

/** Run `task` over `items`, six at a time (CLI start-up dominates; two cores keep up with that). */
async function inBatches<T, R>(items: T[], task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = []
  for (let i = 0; i < items.length; i += 6) results.push(...(await Promise.all(items.slice(i, i + 6).map(task))))
  return results
}

describe('modes of what the registry creates', () => {
  it('folder (and new parents) 0700, entries 0600, quarantine 0700, even in a process started under umask 000', async () => {
    const { root, ws } = sandbox()
    const dir = join(root, 'state', 'app', 'workspaces')
    const idle = join(root, 'idle')
    mkdirSync(idle)
    const child = track(spawn('sh', ['-c', 'umask 000; exec "$0" "$@"', process.execPath, join(FIXTURES, 'umask-writer.mjs'), dir, ws, idle], { stdio: ['ignore', 'pipe', 'inherit'] }))
    const out = stdoutOf(child)
    expect((await exited(child)).code).toBe(0)
    expect(out()).toBe('umask 0\n')
    for (const folder of [join(root, 'state'), join(root, 'state', 'app'), dir, join(dir, '.quarantine')]) expect(mode(folder), folder).toBe(0o700)
    for (const file of [`${workspaceId(ws)}.json`, `${workspaceId(idle)}.json`]) expect(mode(join(dir, file)), file).toBe(0o600)
    expect(readdirSync(join(dir, '.quarantine'))).toHaveLength(1)
  })
})

describe('an unsafe registry folder is refused (E_UNSAFE_DIR, with the fix in the message)', () => {
  const operations = (registry: Registry, ws: string) => ({
    list: () => registry.list(),
    listInfo: () => registry.listInfo({ all: true }),
    read: () => registry.read(ws),
    write: () => registry.write({ cwd: ws }),
    register: () => registry.register(ws),
    remove: () => registry.remove(ws),
    prune: () => registry.prune(),
  })

  async function expectRefused(dir: string, ws: string, fix: RegExp): Promise<void> {
    for (const [name, operation] of Object.entries(operations(new Registry({ dir }), ws))) {
      const error = await operation().then(() => null, (caught: unknown) => caught)
      expect(error, name).toMatchObject({ code: 'E_UNSAFE_DIR' })
      expect((error as Error).message, name).toMatch(fix)
    }
  }

  it('a symlink to a private folder', async () => {
    const { root, dir, ws } = sandbox()
    const real = join(root, 'real')
    mkdirSync(real, { mode: 0o700 })
    await new Registry({ dir: real }).write({ cwd: ws })
    symlinkSync(real, dir)
    const before = readdirSync(real)
    await expectRefused(dir, ws, /symlink: point the registry at the real folder/)
    expect(readdirSync(real)).toEqual(before)
  })

  for (const bits of [0o770, 0o720, 0o702, 0o777, 0o1777]) {
    it(`a folder with mode ${bits.toString(8)} (writable by group or others)`, async () => {
      const { dir, ws } = sandbox()
      mkdirSync(dir)
      chmodSync(dir, bits)
      await expectRefused(dir, ws, /chmod 700/)
      expect(readdirSync(dir)).toEqual([])
    })
  }

  it('a folder readable by others (0755) is accepted: reading an entry cannot feed one', async () => {
    const { dir, ws } = sandbox()
    mkdirSync(dir)
    chmodSync(dir, 0o755)
    await new Registry({ dir }).write({ cwd: ws })
    expect(await new Registry({ dir }).list()).toHaveLength(1)
  })

  it.skipIf(!isRoot)('a folder owned by another user (as root: uid 65534)', async () => {
    const { dir, ws } = sandbox()
    mkdirSync(dir, { mode: 0o700 })
    chownSync(dir, 65534, 65534)
    await expectRefused(dir, ws, /owned by uid 65534.*use a folder of your own/)
  })

  it('the CLI exits 1 with the message on stderr', async () => {
    const { dir } = sandbox()
    mkdirSync(dir)
    chmodSync(dir, 0o777)
    const result = await runCli(['ls', '--dir', dir])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`chmod 700 "${dir}"`)
  })
})

describe('symlinks inside the folder are never followed', () => {
  async function withOutsideEntry() {
    const box = sandbox()
    const registry = new Registry({ dir: box.dir })
    // A real, valid entry kept outside the registry: the bait a symlink would point at.
    const bait = join(box.root, 'bait.json')
    await registry.write({ cwd: box.ws })
    const id = workspaceId(box.ws)
    writeFileSync(bait, readFileSync(join(box.dir, `${id}.json`)))
    return { ...box, registry, bait, id, baitBytes: readFileSync(bait, 'latin1') }
  }

  it('a symlinked entry is corrupt: not read, not deleted through, quarantined as the link itself', async () => {
    const { dir, ws, registry, bait, id, baitBytes } = await withOutsideEntry()
    const entry = join(dir, `${id}.json`)
    await registry.remove(ws)
    symlinkSync(bait, entry)
    expect(await registry.read(ws)).toBeUndefined()
    expect(await registry.list()).toEqual([])
    expect(await registry.listInfo({ all: true })).toMatchObject([{ status: 'corrupt', problem: 'is a symlink' }])
    expect(await registry.remove(ws)).toBe(false)
    const [item] = await registry.prune()
    expect(item).toMatchObject({ reason: 'corrupt', problem: 'is a symlink' })
    expect(lstatSync(item?.quarantinedTo as string).isSymbolicLink()).toBe(true)
    expect(readFileSync(bait, 'latin1')).toBe(baitBytes)
    expect(existsSync(entry)).toBe(false)
  })

  it('a symlinked legacy entry and a symlink to a folder or to /dev/zero are corrupt too', async () => {
    const { root, dir, ws, registry, bait, id, baitBytes } = await withOutsideEntry()
    symlinkSync(bait, join(dir, `${id}-1.json`))
    symlinkSync(root, join(dir, 'aaaaaaaaaaaaaaaa.json'))
    symlinkSync('/dev/zero', join(dir, 'bbbbbbbbbbbbbbbb.json'))
    const rows = await registry.listInfo({ all: true, prune: false })
    expect(rows.filter((row) => row.status === 'corrupt').map((row) => (row as { problem: string }).problem)).toEqual(['is a symlink', 'is a symlink', 'is a symlink'])
    expect(await registry.read(ws)).toMatchObject({ cwd: ws })
    await registry.prune()
    expect(readFileSync(bait, 'latin1')).toBe(baitBytes)
    expect(readdirSync(root).sort()).toEqual(['bait.json', 'reg', 'ws'])
  })

  it('a stale temp file that is a symlink is swept as a link; its target stays', async () => {
    const { root, dir, registry, bait, id, baitBytes } = await withOutsideEntry()
    const temp = join(dir, `${id}.json.tmp-1-1-deadbeef`)
    symlinkSync(bait, temp)
    const old = new Date(Date.now() - 10 * 60_000)
    await lutimes(temp, old, old)
    utimesSync(bait, old, old)
    expect(await registry.prune()).toMatchObject([{ reason: 'stale-temp', path: temp }])
    expect(existsSync(temp)).toBe(false)
    expect(readFileSync(bait, 'latin1')).toBe(baitBytes)
    expect(readdirSync(root).sort()).toEqual(['bait.json', 'reg', 'ws'])
  })

  it('a symlinked .quarantine is never used: the corrupt file stays put and the target stays empty', async () => {
    const { root, dir, registry } = await withOutsideEntry()
    const elsewhere = join(root, 'elsewhere')
    mkdirSync(elsewhere)
    symlinkSync(elsewhere, join(dir, '.quarantine'))
    writeFileSync(join(dir, 'ffffffffffffffff.json'), 'corrupt', { mode: 0o600 })
    expect(await registry.prune()).toMatchObject([{ reason: 'corrupt', quarantinedTo: null }])
    expect(readdirSync(elsewhere)).toEqual([])
    expect(readFileSync(join(dir, 'ffffffffffffffff.json'), 'utf8')).toBe('corrupt')
  })

  it('a .quarantine that is a regular file is not written through either', async () => {
    const { dir, registry } = await withOutsideEntry()
    writeFileSync(join(dir, '.quarantine'), 'a file', { mode: 0o600 })
    writeFileSync(join(dir, 'ffffffffffffffff.json'), 'corrupt', { mode: 0o600 })
    expect(await registry.prune()).toMatchObject([{ reason: 'corrupt', quarantinedTo: null }])
    expect(readFileSync(join(dir, '.quarantine'), 'utf8')).toBe('a file')
  })
})

describe('ids and paths given to the library never reach outside the folder', () => {
  const badIds = ['../../../etc/passwd', '/etc/passwd', '0123456789ABCDEF', '0123456789abcdeg', '0123456789abcdef0', '0123456789abcde',
    '0123456789abcdef\0', '\u00000123456789abcdef', '0123456789abcdef/..', '0123456789abcdef.json', ' 0123456789abcdef', '', 'x'.repeat(100_000)]

  it('readId and removeId refuse anything but 16 lowercase hex chars (E_INVALID)', async () => {
    const { dir } = sandbox()
    const registry = new Registry({ dir })
    for (const id of badIds) {
      await expect(registry.readId(id), JSON.stringify(id.slice(0, 40))).rejects.toMatchObject({ code: 'E_INVALID' })
      await expect(registry.removeId(id), JSON.stringify(id.slice(0, 40))).rejects.toMatchObject({ code: 'E_INVALID' })
    }
    expect(existsSync(dir)).toBe(false)
  })

  it('paths with NUL bytes are E_INVALID for every method, and folders with NUL or relative folders are refused', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const bad = `${ws}\0/../../etc`
    for (const call of [() => registry.read(bad), () => registry.write({ cwd: bad }), () => registry.register(bad), () => registry.remove(bad)]) {
      await expect(call()).rejects.toMatchObject({ code: 'E_INVALID' })
    }
    expect(() => registry.entryPath(bad)).toThrow(expect.objectContaining({ code: 'E_INVALID' }))
    for (const folder of [`${dir}\0x`, 'relative/reg', '../reg', '']) {
      expect(() => new Registry({ dir: folder }), JSON.stringify(folder)).toThrow(expect.objectContaining({ code: 'E_INVALID' }))
    }
  })

  it('any path, however hostile, maps to an entry file directly inside the folder', async () => {
    const { root, dir } = sandbox()
    const registry = new Registry({ dir })
    for (const cwd of ['../../..', '/', '/etc/passwd', `${root}/../../..`, '//x//..//y', `/${'a'.repeat(100_000)}`, './.quarantine', '~', 'C:\\x']) {
      const path = registry.entryPath(cwd)
      expect(path).toMatch(new RegExp(`^${dir}/[0-9a-f]{16}\\.json$`))
      expect(await registry.remove(cwd)).toBe(false)
      expect(await registry.read(cwd)).toBeUndefined()
    }
    expect(readdirSync(root).sort()).toEqual(['ws'])
  })
})

describe('wsreg arguments never read, delete or quarantine a file outside the folder', () => {
  it('hostile <cwd|id> arguments to show, rm, path, then prune and doctor --fix, leave everything outside untouched', async () => {
    const { root, dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    // Bait outside the folder: a valid entry file under the name `rm /etc/passwd` would look for, and a canary.
    const etcId = workspaceId('/etc/passwd')
    writeFileSync(join(root, `${etcId}.json`), serializeEntry({ ...(await registry.read(ws))!, id: etcId, cwd: '/etc/passwd' }), { mode: 0o600 })
    writeFileSync(join(root, 'canary.json'), 'canary', { mode: 0o600 })
    mkdirSync(join(root, '.quarantine'))
    const before = outside(root, dir)
    const args = [
      '../canary.json', '/etc/passwd', join(root, `${etcId}.json`), '../..', '/', `${etcId}/..`, etcId.toUpperCase(), `${etcId}.json`,
      '.quarantine', `/${'y'.repeat(5000)}`,
    ]
    // `show` reads and `rm` deletes; `path` only prints (entryPath is covered through the library above).
    const runs = [...args.flatMap((arg) => [['show', arg], ['rm', arg]]), ['path', '../canary.json'], ['path', `${etcId}/..`]]
    const results = await inBatches(runs, (command) => runCli([...command, '--dir', dir], { cwd: root }))
    for (const result of results) {
      expect(result.stdout).not.toContain('canary')
      expect(result.stdout).not.toContain('"/etc/passwd"')
    }
    const codes = results.map((result) => result.code)
    expect(new Set(codes)).toEqual(new Set([0, 4])) // path prints; the rest name no workspace (not an id, a path or a name): not found
    for (const command of [['prune'], ['doctor', '--fix'], ['ls', '--all']]) expect((await runCli([...command, '--dir', dir])).code).toBe(0)
    expect(outside(root, dir)).toEqual(before)
    expect(await registry.read(ws)).toMatchObject({ cwd: ws }) // and the real entry survived it all
  }, 60_000)

  it('uppercase or over-long ids are not ids: looked up as names, not found (exit 4), never file names', async () => {
    const { dir, ws } = sandbox()
    await new Registry({ dir }).write({ cwd: ws })
    const id = workspaceId(ws)
    const args = [id.toUpperCase(), `${id}0`, id.slice(1), `${id}.json`, `${id}\u200b`]
    const results = await inBatches(args, (arg) => runCli(['rm', arg, '--dir', dir]))
    expect(results.map((result) => result.code)).toEqual(args.map(() => 4))
    for (const result of results) expect(result.stderr).toMatch(/^No workspace/)
    expect(await new Registry({ dir }).read(ws)).toMatchObject({ cwd: ws })
  })
})
