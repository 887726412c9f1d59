// Faults on the read, scan and delete side of the store: an error is not evidence, and nothing is moved or deleted
// that was not judged. Every fault here is real (descriptor limits, read-only mounts, racing processes, reused pids).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { describe, expect, it, vi } from 'vitest'
import { parseEntry, serializeEntry, type Entry } from '../../src/entry.js'
import { QUARANTINE_DIR, workspaceId } from '../../src/paths.js'
import { Registry } from '../../src/registry.js'
import { compareAndDelete } from '../../src/store.js'
import { CLI, FIXTURES, deadPid, exited, fixture, sandbox, sleeper, stdoutOf, tempDir, waitFor } from '../helpers.js'
import { missing, readOnlyView, runBehind } from './kit.js'

/** A registry holding `count` live entries (owned by this test process), with their files' bytes. */
async function liveRegistry(count: number): Promise<{ registry: Registry; dir: string; root: string; files: Map<string, string> }> {
  const { root, dir } = sandbox()
  const registry = new Registry({ dir })
  mkdirSync(join(root, 'w0'))
  const first = await registry.write({ cwd: join(root, 'w0') })
  const files = new Map<string, string>([[`${first.id}.json`, readFileSync(join(dir, `${first.id}.json`), 'utf8')]])
  // The others are the first one moved to other folders: written directly, since a thousand fsyncs would only slow the test.
  for (let i = 1; i < count; i++) {
    const cwd = join(root, `w${i}`)
    mkdirSync(cwd)
    const entry: Entry = { ...first, id: workspaceId(cwd), cwd, name: `w${i}` }
    const text = serializeEntry(entry)
    writeFileSync(join(dir, `${entry.id}.json`), text, { mode: 0o600 })
    files.set(`${entry.id}.json`, text)
  }
  return { registry, dir, root, files }
}

/** Every entry file is still there with the bytes it had, and nothing went to quarantine. */
function expectUntouched(dir: string, files: Map<string, string>): void {
  for (const [name, text] of files) expect(readFileSync(join(dir, name), 'utf8'), name).toBe(text)
  expect(existsSync(join(dir, QUARANTINE_DIR)) ? readdirSync(join(dir, QUARANTINE_DIR)) : []).toEqual([])
}

// No hard links here: this kernel has no vfat and no FUSE filesystem to mount, so `link` failing with EPERM (as on
// vfat, some FUSE and SMB mounts) is the one mocked fault of this file. It is off unless a test sets it.
const fault = vi.hoisted(() => ({ link: null as null | ((from: string, to: string) => void) }))
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>()
  const linkSync = (from: string, to: string) => (fault.link ? fault.link(from, to) : fs.linkSync(from, to))
  return { ...fs, default: { ...fs, linkSync }, linkSync }
})

const starved = (args: string[]) => runBehind(['prlimit', '--nofile=128'], join(FIXTURES, 'fd-starved.mjs'), args)

describe('EMFILE: a file that cannot be opened is not corrupt', () => {
  it(`prune at the open-file limit never quarantines or deletes a live entry${missing('prlimit')}`, { timeout: 60_000 }, async () => {
    const { dir, files } = await liveRegistry(300)
    const run = await starved(['prune', dir, '', '300'])
    expect(run.code, run.stderr).toBe(0)
    const { passes, unreadable } = JSON.parse(run.stdout).result
    expect(passes).toBe(3)
    expectUntouched(dir, files)
    expect(unreadable, 'the fault was made: some opens failed with EMFILE').toBeGreaterThan(0)
  })

  it(`doctor --fix at the open-file limit never quarantines or deletes a live entry${missing('prlimit')}`, { timeout: 60_000 }, async () => {
    const { dir, files } = await liveRegistry(300)
    const run = await starved(['doctor', dir, '', '300'])
    expect(run.code, run.stderr).toBe(0)
    const { passes, unreadable } = JSON.parse(run.stdout).result
    expect(passes).toBe(3)
    expectUntouched(dir, files)
    expect(unreadable, 'the fault was made: some opens failed with EMFILE').toBeGreaterThan(0)
  })

  it(`write at the open-file limit fails with E_UNREADABLE and leaves the caller's own entry in place${missing('prlimit')}`, async () => {
    const { dir, root, files } = await liveRegistry(3)
    const run = await starved(['write', dir, join(root, 'w1')])
    expectUntouched(dir, files)
    expect(JSON.parse(run.stdout), run.stderr).toMatchObject({ error: 'E_UNREADABLE', message: expect.stringMatching(/EMFILE.*ulimit -n/) })
  })

  it(`register at the open-file limit fails with E_UNREADABLE and moves nothing${missing('prlimit')}`, async () => {
    const { dir, root, files } = await liveRegistry(3)
    const run = await starved(['register', dir, join(root, 'w2')])
    expectUntouched(dir, files)
    expect(JSON.parse(run.stdout), run.stderr).toMatchObject({ error: 'E_UNREADABLE' })
  })
})

describe('compare-and-move quarantine', () => {
  it('prune racing real writers never quarantines a fresh valid write', { timeout: 60_000 }, async () => {
    const { dir, files } = await liveRegistry(600)
    const planFile = join(tempDir(), 'plan.json')
    writeFileSync(planFile, JSON.stringify([...files].map(([name, text]) => [join(dir, name), text])))
    const writers = [fixture('rewriter.mjs', [planFile])]
    const outs = writers.map(stdoutOf)
    await waitFor(() => outs.every((out) => out().includes('ready')))
    const registry = new Registry({ dir })
    let corruptSeen = 0
    for (let round = 0; round < 4; round++) {
      // Torn bytes in place: truly corrupt when judged, and rewritten (validly) by the writers at any moment.
      for (const name of files.keys()) writeFileSync(join(dir, name), '{"version": 1, "id"')
      corruptSeen += (await registry.prune()).filter((item) => item.reason === 'corrupt').length
    }
    for (const writer of writers) writer.kill('SIGKILL')
    await Promise.all(writers.map(exited))
    const quarantined = existsSync(join(dir, QUARANTINE_DIR)) ? readdirSync(join(dir, QUARANTINE_DIR)) : []
    const fresh = quarantined.filter((name) => parseEntry(readFileSync(join(dir, QUARANTINE_DIR, name)), name.slice(0, 16)).ok)
    expect(fresh).toEqual([])
    expect(corruptSeen, 'the race was run: prune judged files corrupt').toBeGreaterThan(0)
  })

  it('register() quarantines a corrupt entry file and records the workspace, as write() does', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    mkdirSync(dir, { mode: 0o700 })
    writeFileSync(registry.entryPath(ws), 'not json', { mode: 0o600 })
    const entry = await registry.register(ws)
    expect(entry).toMatchObject({ cwd: ws, pid: 0 })
    expect(await registry.read(ws)).toEqual(entry)
    const quarantined = readdirSync(join(dir, QUARANTINE_DIR))
    expect(quarantined).toHaveLength(1)
    expect(readFileSync(join(dir, QUARANTINE_DIR, quarantined[0] as string), 'utf8')).toBe('not json')
  })
})

describe('register() against a corrupt file that cannot be quarantined', () => {
  it('fails with E_CORRUPT naming the file, not a misleading E_LOCKED', async () => {
    const { dir, ws, root } = sandbox()
    const registry = new Registry({ dir })
    mkdirSync(dir, { mode: 0o700 })
    mkdirSync(join(root, 'elsewhere'))
    symlinkSync(join(root, 'elsewhere'), join(dir, QUARANTINE_DIR)) // a quarantine that is a link is never used
    writeFileSync(registry.entryPath(ws), 'not json', { mode: 0o600 })
    await expect(registry.register(ws)).rejects.toMatchObject({ code: 'E_CORRUPT', message: expect.stringContaining(registry.entryPath(ws)) })
    expect(readFileSync(registry.entryPath(ws), 'utf8')).toBe('not json')
  })
})

describe('a compare-and-delete killed midway', () => {
  it(`a read-only registry with a leftover aside file still lists (library and wsreg ls), showing the entry${missing('mount')}`, async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const entry = await registry.write({ cwd: ws })
    renameSync(registry.entryPath(ws), `${registry.entryPath(ws)}.cad-${await deadPid()}-1-abcdef01`)
    const view = readOnlyView(dir)
    expect(await new Registry({ dir: view }).list()).toEqual([entry])
    const ls = spawnSync(process.execPath, [CLI, '--dir', view, 'ls', '--json'], { encoding: 'utf8' })
    expect(ls.status, ls.stderr).toBe(0)
    expect(JSON.parse(ls.stdout)).toMatchObject([{ id: entry.id, cwd: ws, status: 'alive' }])
  })

  it('list({ prune: false }) shows the entry a killed compare-and-delete left aside, and changes nothing on disk', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const entry = await registry.write({ cwd: ws })
    const aside = `${registry.entryPath(ws)}.cad-${await deadPid()}-t1-1-abcdef01`
    renameSync(registry.entryPath(ws), aside)
    expect(await registry.list({ prune: false })).toEqual([entry])
    expect(readdirSync(dir)).toEqual([aside.slice(dir.length + 1)])
  })

  it("a reused pid (other start ticks) does not make a dead deleter's aside look in progress: the entry is restored", async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const entry = await registry.write({ cwd: ws })
    const stranger = sleeper()
    await waitFor(() => existsSync(`/proc/${stranger.pid}/stat`))
    // Tick 1 is not when the stranger started: the deleter that took this aside was another process with its pid.
    renameSync(registry.entryPath(ws), `${registry.entryPath(ws)}.cad-${stranger.pid}-t1-1-abcdef01`)
    expect(await registry.list()).toEqual([entry])
    expect(readdirSync(dir)).toEqual([`${entry.id}.json`])
  })

  it('a corrupt file a killed quarantine left aside goes to quarantine, never to the temp sweep', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    mkdirSync(dir, { mode: 0o700 })
    const aside = `${registry.entryPath(ws)}.cad-${await deadPid()}-t1-1-abcdef01`
    writeFileSync(aside, 'not json', { mode: 0o600 })
    const old = new Date(Date.now() - 3_600_000)
    utimesSync(aside, old, old) // a rename keeps the mtime: an aside can look old to the sweep
    expect(await registry.list()).toEqual([])
    expect(existsSync(aside)).toBe(true)
    expect((await registry.prune()).map((item) => item.reason)).toEqual(['corrupt'])
    const quarantined = readdirSync(join(dir, QUARANTINE_DIR))
    expect(quarantined.map((name) => readFileSync(join(dir, QUARANTINE_DIR, name), 'utf8'))).toEqual(['not json'])
  })

  it('an aside whose deleter still runs (same pid and start ticks) is left alone', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws })
    const ticks = readFileSync('/proc/self/stat', 'latin1').split(') ')[1]?.split(' ')[19]
    const aside = `${registry.entryPath(ws)}.cad-${process.pid}-t${ticks}-1-abcdef01`
    renameSync(registry.entryPath(ws), aside)
    expect(await registry.list()).toEqual([])
    expect(existsSync(aside)).toBe(true)
  })
})

describe('Claim.update is compare-and-swap', () => {
  it('never overwrites a new owner that lands during an update: the update fails with E_LOCKED instead', { timeout: 60_000 }, async () => {
    const { root, dir } = sandbox()
    const registry = new Registry({ dir })
    const taker = fixture('taker.mjs', [dir], { stdio: ['pipe', 'pipe', 'pipe'] })
    const out = stdoutOf(taker)
    await waitFor(() => out().includes('ready'))
    for (let trial = 0; trial < 15; trial++) {
      const cwd = join(root, `t${trial}`)
      mkdirSync(cwd)
      const claim = await registry.claim({ cwd, cleanupOnExit: false })
      taker.stdin?.write(`${cwd}\n`)
      let refused = false
      // Update as fast as we can while the other process takes the workspace over, then once more after it has.
      for (let done = false; !refused; ) {
        done ||= out().includes(`took ${cwd}\n`)
        try {
          await claim.update({ name: `update ${trial}` })
        } catch (error) {
          expect((error as { code?: string }).code).toBe('E_LOCKED')
          refused = true
        }
        if (done && !refused) throw new Error(`trial ${trial}: an update after the takeover succeeded: the new owner's entry was overwritten`)
        await new Promise((resolve) => setImmediate(resolve)) // let the taker's output in
      }
      expect((await registry.read(cwd))?.pid).toBe(taker.pid)
    }
    taker.kill('SIGKILL')
  })
})

describe('a filesystem without hard links (link mocked to fail with EPERM)', () => {
  const eperm = () => Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' })

  it('the put-back of a compare-and-delete never overwrites a newer version that landed meanwhile', () => {
    const dir = tempDir()
    const path = join(dir, 'x.json')
    writeFileSync(path, 'judged-not-this')
    fault.link = (_from, to) => {
      // A writer's rename lands between the take-aside and the put-back, then link fails as on vfat.
      writeFileSync(`${to}.tmp`, 'newer')
      renameSync(`${to}.tmp`, to)
      throw eperm()
    }
    try {
      expect(compareAndDelete(dir, 'x.json', Buffer.from('something else'))).toBe('changed')
    } finally {
      fault.link = null
    }
    expect(readFileSync(path, 'utf8')).toBe('newer')
    expect(readdirSync(dir)).toEqual(['x.json'])
  })

  it('the put-back still restores the version taken by mistake when nothing newer landed', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'x.json'), 'current')
    fault.link = () => {
      throw eperm()
    }
    try {
      expect(compareAndDelete(dir, 'x.json', Buffer.from('older'))).toBe('changed')
    } finally {
      fault.link = null
    }
    expect(readFileSync(join(dir, 'x.json'), 'utf8')).toBe('current')
    expect(readdirSync(dir)).toEqual(['x.json'])
  })
})
