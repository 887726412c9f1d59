// Writes under real faults: a tiny tmpfs that fills up, a filesystem without hard links (vfat through FUSE),
// a writer SIGKILLed mid-write. Each test names the promise it guards.
import { spawnSync } from 'node:child_process'
import { closeSync, fstatSync, ftruncateSync, openSync, readdirSync, readFileSync, truncateSync, utimesSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { isErrno } from '../../src/errors.js'
import { Registry } from '../../src/registry.js'
import { createExclusive } from '../../src/store.js'
import { exited, fixture, refusal, ROOT, stdoutOf, tempDir, waitFor, filesIn } from '../helpers.js'
import { missing, registryIn, tinyDisk } from './kit.js'

const ENTRY = /^[0-9a-f]{16}\.json$/
const name = '0123456789abcdef.json'
const blob = (size: number, tag = 'x'): { blob: string } => ({ blob: tag.padEnd(size, tag) })

/** Fill the disk holding `dir`, then free `leaveBytes` again (rounded up to pages by the filesystem). */
function fill(dir: string, leaveBytes = 0): void {
  const fd = openSync(join(dir, 'filler'), 'w')
  const chunk = Buffer.alloc(64 * 1024, 1)
  try {
    for (;;) writeSync(fd, chunk)
  } catch (error) {
    if (!isErrno(error, 'ENOSPC')) throw error
  }
  if (leaveBytes > 0) ftruncateSync(fd, fstatSync(fd).size - leaveBytes)
  closeSync(fd)
}

const inodeMounts: string[] = []
afterEach(() => {
  while (inodeMounts.length) spawnSync('umount', ['-l', inodeMounts.pop() as string], { stdio: 'ignore' })
})

/** A tmpfs with room for data but only `inodes` files and folders: creating one more fails with ENOSPC. */
function inodeDisk(inodes: number): string {
  const dir = tempDir('wsreg-inodes-')
  const result = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=512k,nr_inodes=${inodes},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`mount failed: ${result.stderr}`)
  inodeMounts.push(dir)
  return dir
}

const noMount = missing('root', 'mount')

describe('a full disk fails writes whole (real tiny tmpfs)', () => {
  it.skipIf(noMount)(`a full disk fails the write with E_NO_SPACE and keeps the old entry byte for byte${noMount}`, async () => {
    const dir = registryIn(tinyDisk(512))
    const registry = new Registry({ dir })
    const cwd = tempDir()
    await registry.write({ cwd, meta: { round: 1 } })
    const path = registry.entryPath(cwd)
    const before = readFileSync(path)
    // 16 KiB left for a 200 kB entry: the first write comes back short, the next one hits ENOSPC.
    fill(dir, 16 * 1024)
    const error = await refusal(registry.write({ cwd, meta: blob(200_000) }))
    expect(error.code).toBe('E_NO_SPACE')
    expect(error.message).toContain(dir)
    expect(error.message).toMatch(/free some space/i)
    expect(readFileSync(path).equals(before)).toBe(true)
    expect(readdirSync(dir).sort()).toEqual([path.slice(dir.length + 1), 'filler'].sort())
    expect(await registry.read(cwd)).toMatchObject({ meta: { round: 1 } })
  })

  it.skipIf(noMount)(`createExclusive on a full disk fails with E_NO_SPACE and leaves no file, whole or torn${noMount}`, () => {
    const dir = registryIn(tinyDisk(512))
    fill(dir, 16 * 1024)
    expect(() => createExclusive(dir, name, JSON.stringify(blob(200_000)))).toThrow(expect.objectContaining({ code: 'E_NO_SPACE' }))
    expect(readdirSync(dir)).toEqual(['filler'])
  })

  it.skipIf(noMount)(`register() on a full disk fails with E_NO_SPACE, not E_LOCKED or a raw errno, and keeps the idle entry${noMount}`, async () => {
    const dir = registryIn(tinyDisk(512))
    const registry = new Registry({ dir })
    const cwd = tempDir()
    const fresh = tempDir()
    await registry.register(cwd, 'first')
    const path = registry.entryPath(cwd)
    const before = readFileSync(path)
    fill(dir)
    expect((await refusal(registry.register(cwd, 'second'))).code).toBe('E_NO_SPACE')
    expect(readFileSync(path).equals(before)).toBe(true)
    expect((await refusal(registry.register(fresh))).code).toBe('E_NO_SPACE')
    expect(readdirSync(dir).sort()).toEqual([path.slice(dir.length + 1), 'filler'].sort())
  })

  it.skipIf(noMount)(`a claim and its update on a full disk fail with E_NO_SPACE and keep the claimed entry${noMount}`, async () => {
    const dir = registryIn(tinyDisk(512))
    const registry = new Registry({ dir })
    const cwd = tempDir()
    const claim = await registry.claim({ cwd, name: 'mine', cleanupOnExit: false })
    const path = registry.entryPath(cwd)
    const before = readFileSync(path)
    fill(dir, 16 * 1024)
    expect((await refusal(claim.update({ meta: blob(200_000) }))).code).toBe('E_NO_SPACE')
    expect(readFileSync(path).equals(before)).toBe(true)
    expect(claim.entry.meta).toBeUndefined()
    expect((await refusal(registry.claim({ cwd: tempDir(), meta: blob(200_000), cleanupOnExit: false }))).code).toBe('E_NO_SPACE')
    // The held claim's lock side file stays; the refused claim's went with its lock.
    const id = path.slice(dir.length + 1, -'.json'.length)
    expect(readdirSync(dir).sort()).toEqual([`${id}.json`, `${id}.lock`, 'filler'].sort())
    expect(await claim.release()).toBe(true)
  })

  it.skipIf(noMount)(`a list on a full disk still lists a legacy entry it cannot migrate, and loses nothing${noMount}`, async () => {
    const dir = registryIn(tinyDisk(512))
    const legacy = 'c309689ef6f2432e-0.json' // /var, idle: migrating it means writing <id>.json
    const bytes = readFileSync(join(ROOT, 'fixtures', 'legacy', legacy))
    writeFileSync(join(dir, legacy), bytes, { mode: 0o600 })
    fill(dir)
    expect(await new Registry({ dir }).list()).toMatchObject([{ cwd: '/var', name: 'var-idle', pid: 0 }])
    expect(readFileSync(join(dir, legacy)).equals(bytes)).toBe(true)
    expect(readdirSync(dir).sort()).toEqual([legacy, 'filler'])
  })

  it.skipIf(noMount)(`a disk out of inodes fails the write, and the first write's folder creation, with E_NO_SPACE${noMount}`, async () => {
    const disk = inodeDisk(12)
    const dir = registryIn(disk)
    const registry = new Registry({ dir })
    const cwd = tempDir()
    await registry.write({ cwd, name: 'kept' })
    const path = registry.entryPath(cwd)
    const before = readFileSync(path)
    for (let i = 0; ; i++) {
      try {
        writeFileSync(join(disk, `inode-${i}`), '')
      } catch (error) {
        if (isErrno(error, 'ENOSPC')) break
        throw error
      }
    }
    expect((await refusal(registry.write({ cwd, name: 'lost' }))).code).toBe('E_NO_SPACE')
    expect(readFileSync(path).equals(before)).toBe(true)
    expect((await refusal(new Registry({ dir: join(disk, 'new', 'reg') }).write({ cwd }))).code).toBe('E_NO_SPACE')
  })
})

// A real filesystem without hard links: a vfat image served by fusefat (the kernel here has no vfat module).
// Probed once for real (tools, /dev/fuse, mount rights), so a machine that cannot make the fault says why.
const FAT_PROBE = 'd=$(mktemp -d) && truncate -s 1M "$d/i" && mkdir "$d/m" && mkfs.vfat "$d/i" && fusefat -o rw+ "$d/i" "$d/m" && umount "$d/m"; r=$?; rm -rf "$d"; exit $r'
const noFat = missing('root') || (spawnSync('sh', ['-c', FAT_PROBE], { stdio: 'ignore', timeout: 10_000 }).status === 0
  ? ''
  : ' (skipped: cannot mount a vfat image through FUSE here — needs /dev/fuse and apt-get install dosfstools fusefat, as .ci/run does)')
const fatMounts: string[] = []
afterEach(() => {
  while (fatMounts.length) spawnSync('umount', ['-l', fatMounts.pop() as string], { stdio: 'ignore' })
})

function linklessDisk(): string {
  const root = tempDir('wsreg-fat-')
  const image = join(root, 'fat.img')
  const mountPoint = join(root, 'mnt')
  writeFileSync(image, Buffer.alloc(0))
  truncateSync(image, 4 * 1024 * 1024)
  const steps: string[][] = [['mkfs.vfat', image], ['mkdir', mountPoint], ['fusefat', '-o', 'rw+', image, mountPoint]]
  for (const [command, ...args] of steps) {
    const result = spawnSync(command as string, args, { encoding: 'utf8' })
    if (result.status !== 0) throw new Error(`${command} failed: ${result.stderr}`)
    if (command === 'fusefat') fatMounts.push(mountPoint)
  }
  return mountPoint
}

describe('a filesystem without hard links (real vfat through FUSE)', () => {
  it.skipIf(noFat)(`createExclusive there creates a missing file and never overwrites an existing one${noFat}`, () => {
    const dir = registryIn(linklessDisk())
    expect(createExclusive(dir, name, 'first')).toBe(true)
    expect(createExclusive(dir, name, 'second')).toBe(false)
    expect(readFileSync(join(dir, name), 'utf8')).toBe('first')
    // Replacing a judged version: only while the file still holds exactly those bytes.
    expect(createExclusive(dir, name, 'third', Buffer.from('not what is there'))).toBe(false)
    expect(createExclusive(dir, name, 'third', Buffer.from('first'))).toBe(true)
    expect(readFileSync(join(dir, name), 'utf8')).toBe('third')
    expect(readdirSync(dir)).toEqual([name])
  })

  it.skipIf(noFat)(`register() works there: creates, re-registers an idle entry, and returns a live one untouched${noFat}`, async () => {
    const dir = registryIn(linklessDisk())
    const registry = new Registry({ dir })
    const cwd = tempDir()
    expect(await registry.register(cwd, 'first')).toMatchObject({ pid: 0, name: 'first' })
    expect(await registry.register(cwd, 'second')).toMatchObject({ pid: 0, name: 'second' })
    expect(await registry.read(cwd)).toMatchObject({ pid: 0, name: 'second' })
    const live = await registry.write({ cwd, name: 'live' })
    expect(await registry.register(cwd, 'third')).toEqual(live)
    expect(readdirSync(dir).filter((file) => !ENTRY.test(file))).toEqual([])
  })
})

describe('rewrites keep what a newer writer recorded', () => {
  it('a rewrite of a version-2 entry keeps version 2 and its unknown fields', async () => {
    const dir = tempDir()
    const registry = new Registry({ dir })
    const cwd = tempDir()
    await registry.write({ cwd, name: 'old' })
    const path = registry.entryPath(cwd)
    const planted = { ...JSON.parse(readFileSync(path, 'utf8')), version: 2, lease: { renew: 'hourly' }, tags: ['a'] }
    writeFileSync(path, `${JSON.stringify(planted, null, 2)}\n`)
    await registry.write({ cwd, name: 'new', meta: { n: 1 } })
    const rewritten = JSON.parse(readFileSync(path, 'utf8'))
    expect(rewritten).toMatchObject({ version: 2, name: 'new', meta: { n: 1 }, lease: { renew: 'hourly' }, tags: ['a'] })
  })
})

describe('a writer SIGKILLed mid-write', () => {
  it('leaves the last whole entry, and no temp file once its debris is older than a minute and pruned', async () => {
    const root = tempDir()
    const dir = join(root, 'reg')
    const cwd = tempDir()
    for (let round = 0; round < 3; round++) {
      const writer = fixture('writer.mjs', ['forever', dir, cwd])
      const out = stdoutOf(writer)
      await waitFor(() => out().includes('ready') && readdirSyncSafe(dir).some((file) => ENTRY.test(file)))
      writer.kill('SIGKILL')
      await exited(writer)
      const files = filesIn(dir)
      const entries = files.filter((file) => ENTRY.test(file))
      expect(entries).toHaveLength(1)
      expect(JSON.parse(readFileSync(join(dir, entries[0] as string), 'utf8')).meta.blob).toHaveLength(200_000)
      // Whatever else is left is a temp file named after the entry, which prune sweeps once it is stale.
      for (const file of files.filter((file) => !ENTRY.test(file))) {
        expect(file.startsWith(`${entries[0]}.`)).toBe(true)
        const old = new Date(Date.now() - 120_000)
        utimesSync(join(dir, file), old, old)
      }
      // (The dead writer's entry may go too: only the temp files are in question here.)
      await new Registry({ dir }).prune()
      expect(readdirSync(dir).filter((file) => !file.startsWith('.') && !ENTRY.test(file))).toEqual([])
    }
  })
})

function readdirSyncSafe(dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch {
    return []
  }
}
