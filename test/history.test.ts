// History: every end the registry makes is one NDJSON line in `.history`, safe under concurrent appenders, bounded
// by one rotation, and never a reason for a deletion to fail. Real processes, real files, real full and read-only disks.
import { appendFileSync, chmodSync, existsSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync, writeSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { diagnose } from '../src/doctor.js'
import { HISTORY_FILE, HISTORY_OLD_FILE, HISTORY_ROTATE_BYTES, appendHistory, readHistory, type HistoryRecord } from '../src/history.js'
import { QUARANTINE_DIR, workspaceId } from '../src/paths.js'
import { Registry } from '../src/registry.js'
import type { RegistryEvent } from '../src/transition.js'
import { exited, fixture, runCli, sandbox, sleeper, stdoutOf, tempDir, waitFor, writeDeadEntry } from './helpers.js'
import { missing, readOnlyView, registryIn, tinyDisk } from './faults/kit.js'

const record = (name: string) => ({ id: '0123456789abcdef', cwd: '/nowhere', name, pid: 1, event: 'pruned' as const, reason: 'exited' })

/** Every line of the history files, parsed (a line that does not parse fails the test). */
function lines(dir: string): HistoryRecord[] {
  const all: HistoryRecord[] = []
  for (const file of [HISTORY_OLD_FILE, HISTORY_FILE]) {
    if (!existsSync(join(dir, file))) continue
    const text = readFileSync(join(dir, file), 'utf8')
    expect(text.endsWith('\n'), `${file} ends with a whole line`).toBe(true)
    for (const line of text.slice(0, -1).split('\n')) all.push(JSON.parse(line) as HistoryRecord)
  }
  return all
}

/** Run the appender fixture in `children` processes at once; resolves when all have exited. */
async function appendInParallel(dir: string, children: number, count: number, nameBytes: number): Promise<void> {
  const runs = Array.from({ length: children }, () => {
    const child = fixture('history-appender.mjs', [dir, String(count), String(nameBytes)])
    const out = stdoutOf(child)
    return exited(child).then(({ code }) => {
      expect(code).toBe(0)
      expect(out().trim()).toBe('0') // no append failed
    })
  })
  await Promise.all(runs)
}

describe('history file', () => {
  it('8 processes appending 500 records each at once: every line parses and none is lost', async () => {
    const { dir } = sandbox()
    mkdirSync(dir, { mode: 0o700 })
    await appendInParallel(dir, 8, 500, 80)
    const records = lines(dir)
    expect(records).toHaveLength(4000)
    expect(new Set(records.map((r) => (r.name as string).replace(/x+$/, ''))).size).toBe(4000)
    expect(statSync(join(dir, HISTORY_FILE)).mode & 0o777).toBe(0o600)
    expect(readHistory(dir)).toHaveLength(4000)
  })

  it('concurrent appenders across several rotations: every line parses, one older file is kept, each file stays near 1 MiB', async () => {
    const { dir } = sandbox()
    mkdirSync(dir, { mode: 0o700 })
    // 8 × 400 × ~2.1 kB ≈ 6.7 MiB: at least five rotations, raced by eight appenders.
    await appendInParallel(dir, 8, 400, 2000)
    expect(readdirSync(dir).sort()).toEqual([HISTORY_FILE, HISTORY_OLD_FILE])
    const records = lines(dir)
    expect(records.length).toBeGreaterThan(400)
    // An appender that opened the old file just before a rotation adds its record there: a few lines at most.
    expect(statSync(join(dir, HISTORY_OLD_FILE)).size).toBeLessThanOrEqual(HISTORY_ROTATE_BYTES + 8 * 4096)
    expect(statSync(join(dir, HISTORY_FILE)).size).toBeLessThanOrEqual(HISTORY_ROTATE_BYTES + 8 * 4096)
  })

  it('rotates at 1 MiB, keeps one older file, and history() reads across both, newest first', async () => {
    const { dir } = sandbox()
    mkdirSync(dir, { mode: 0o700 })
    const registry = new Registry({ dir })
    let i = 0
    let rotations = 0
    let size = 0
    // Past two rotations: the oldest generation is gone, one older file remains.
    while (rotations < 2 || size < 100_000) {
      expect(appendHistory(dir, record(`r${i++}:`.padEnd(1500, '.')))).toBe(true)
      const now = statSync(join(dir, HISTORY_FILE)).size
      if (now < size) rotations++
      size = now
      if (i > 5000) throw new Error('no rotation')
    }
    const older = lines(dir)
    expect(statSync(join(dir, HISTORY_OLD_FILE)).size).toBeLessThanOrEqual(HISTORY_ROTATE_BYTES)
    const all = await registry.history()
    expect(all.length).toBe(older.length)
    expect(all.length).toBeLessThan(i) // the first generation was dropped
    expect(all[0]?.name?.startsWith(`r${i - 1}:`)).toBe(true)
    expect(all.at(-1)?.name).toBe(older[0]?.name)
    expect((await registry.history({ limit: 3 })).map((r) => r.name)).toEqual(all.slice(0, 3).map((r) => r.name))
  })

  it('a torn line (a write cut short) and foreign lines are skipped, the records around them are read', () => {
    const { dir } = sandbox()
    mkdirSync(dir, { mode: 0o700 })
    appendHistory(dir, record('before'))
    appendFileSync(join(dir, HISTORY_FILE), '{"at":"2026-01-01T00:00:00.000Z","id":"0123')
    appendHistory(dir, record('glued'))
    appendFileSync(join(dir, HISTORY_FILE), 'not json\n[1,2]\n{"at":1}\n')
    appendHistory(dir, record('after'))
    expect(readHistory(dir).map((r) => r.name).sort()).toEqual(['after', 'before', 'glued'])
  })

  it('a record is one bounded line: a huge name and cwd are cut and marked truncated', () => {
    const { dir } = sandbox()
    mkdirSync(dir, { mode: 0o700 })
    expect(appendHistory(dir, { ...record('\u0001'.repeat(4000)), cwd: `/${'é'.repeat(4000)}` })).toBe(true)
    const [line] = readFileSync(join(dir, HISTORY_FILE), 'utf8').split('\n')
    expect(Buffer.byteLength(`${line}\n`)).toBeLessThanOrEqual(4096)
    expect(JSON.parse(line as string)).toMatchObject({ truncated: true })
  })
})

describe('batched records', () => {
  it('one batch larger than a write (3-byte characters): every record lands whole, in order, with the same key order as ever', () => {
    const { dir } = sandbox()
    mkdirSync(dir, { mode: 0o700 })
    // ~1,000 UTF-8 bytes per record, 300 records: ~300 KB, several writes, each bounded in UTF-16 units at 3 bytes a unit.
    const batch = Array.from({ length: 300 }, (_, i) => ({ ...record(`n${i}`), cwd: `/${'€'.repeat(320)}/${i}` }))
    expect(appendHistory(dir, [...batch, { id: '0123456789abcdef', cwd: null, name: null, pid: null, event: 'quarantined' as const, reason: 'corrupt', problem: 'bad JSON', to: '/x/.quarantine/f' }])).toBe(true)
    const all = lines(dir)
    expect(all.map((line) => line.name)).toEqual([...batch.map((line) => line.name), null])
    expect(all.every((line) => !line.truncated)).toBe(true)
    expect(Object.keys(all[0] as object)).toEqual(['at', 'id', 'cwd', 'name', 'pid', 'event', 'reason', 'by'])
    expect(Object.keys(all[300] as object)).toEqual(['at', 'id', 'cwd', 'name', 'pid', 'event', 'reason', 'problem', 'by', 'to'])
    expect(all[300]).toMatchObject({ problem: 'bad JSON', to: 'f' })
  })
})

describe('every end is recorded', () => {
  it('prune of a dead entry records pruned, its reason and the deleting pid', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const child = sleeper()
    const entry = await registry.write({ cwd: ws, pid: child.pid, name: 'team' })
    child.kill('SIGKILL')
    await exited(child)
    expect(await registry.prune()).toHaveLength(1)
    const [ended, ...rest] = await registry.history({ cwd: ws })
    expect(rest).toEqual([])
    expect(ended).toMatchObject({ id: entry.id, cwd: ws, name: 'team', pid: child.pid, event: 'pruned', reason: 'exited', by: process.pid })
    expect(Date.now() - Date.parse(ended?.at as string)).toBeLessThan(60_000)
  })

  it('a self-pruning list in another process records that process as the deleter', async () => {
    const { dir, ws } = sandbox()
    await writeDeadEntry(new Registry({ dir }), ws)
    const result = await runCli(['ls', '--dir', dir])
    expect(result.code).toBe(0)
    const [ended] = await new Registry({ dir }).history()
    expect(ended).toMatchObject({ event: 'pruned', reason: 'exited', cwd: ws })
    expect(ended?.by).not.toBe(process.pid)
  })

  it('remove, claim release, reap, quarantine and legacy migration each record their event', async () => {
    const { root, dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws, pid: 0 })
    await registry.remove(ws)
    const claim = await registry.claim({ cwd: ws, cleanupOnExit: false })
    await claim.release()
    const child = sleeper()
    await waitFor(() => readFileSync(`/proc/${child.pid}/stat`, 'utf8'))
    await registry.write({ cwd: ws, pid: child.pid })
    expect((await registry.reap(ws, { graceMs: 5000 })).outcome).toBe('terminated')
    writeFileSync(join(dir, `${workspaceId(join(root, 'bad'))}.json`), '{ not json', { mode: 0o600 })
    const legacyCwd = join(root, 'old')
    mkdirSync(legacyCwd)
    writeFileSync(join(dir, `${workspaceId(legacyCwd)}-1.json`), JSON.stringify({ cwd: legacyCwd, name: 'old', pid: 1, startedAt: '2099-01-01T00:00:00.000Z' }))
    await registry.prune()
    const events = (await registry.history()).map((r) => `${r.event}:${r.reason}`)
    expect(events.sort()).toEqual(['migrated:legacy-migrated', 'quarantined:corrupt', 'reaped:terminated', 'released:null', 'removed:null'].sort())
    const [quarantined] = (await registry.history()).filter((r) => r.event === 'quarantined')
    expect(readdirSync(join(dir, QUARANTINE_DIR))).toContain(quarantined?.to)
    expect(quarantined?.problem).toBeTruthy()
  })

  it('exit cleanup of a claim (SIGTERM) records released by the exiting process', async () => {
    const { dir, ws } = sandbox()
    const child = fixture('claimer.mjs', [dir, ws, 'wait'])
    const out = stdoutOf(child)
    await waitFor(() => out().includes('claimed'), 10_000, 'claim')
    child.kill('SIGTERM')
    await exited(child)
    const [ended] = await new Registry({ dir }).history({ cwd: ws })
    expect(ended).toMatchObject({ event: 'released', reason: null, pid: child.pid, by: child.pid, name: 'claimer' })
  })

  it('.history is never listed, swept or quarantined, and doctor does not complain about it', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await writeDeadEntry(registry, ws)
    await registry.prune()
    appendHistory(dir, record('rotated'))
    writeFileSync(join(dir, HISTORY_OLD_FILE), readFileSync(join(dir, HISTORY_FILE)), { mode: 0o600 })
    const old = new Date(Date.now() - 3600_000)
    for (const file of [HISTORY_FILE, HISTORY_OLD_FILE]) utimesSync(join(dir, file), old, old)
    expect(await registry.prune()).toEqual([])
    expect(await registry.listInfo({ all: true })).toEqual([])
    const diagnosis = await diagnose(registry)
    expect(diagnosis.healthy).toBe(true)
    expect(diagnosis.findings.filter((finding) => finding.path.includes('.history'))).toEqual([])
    expect(readdirSync(dir).sort()).toEqual([HISTORY_FILE, HISTORY_OLD_FILE])
  })
})

describe('doctor', () => {
  it('reports a history file others can read (--fix chmods it 600) and one that is not a regular file', async () => {
    const { dir } = sandbox()
    mkdirSync(dir, { mode: 0o700 })
    const registry = new Registry({ dir })
    appendHistory(dir, record('one'))
    chmodSync(join(dir, HISTORY_FILE), 0o644)
    mkdirSync(join(dir, HISTORY_OLD_FILE))
    expect((await diagnose(registry)).findings.map((finding) => `${finding.kind}:${finding.path.slice(dir.length + 1)}`).sort()).toEqual([
      'file-mode:.history',
      'history-file:.history.1',
    ])
    const fixed = await diagnose(registry, { fix: true })
    expect(fixed.fixed).toEqual([`chmod 600 ${join(dir, HISTORY_FILE)}`])
    expect(fixed.findings.map((finding) => finding.kind)).toEqual(['history-file'])
    expect(statSync(join(dir, HISTORY_FILE)).mode & 0o777).toBe(0o600)
  })
})

describe('history faults: an append that fails never fails the end it records', () => {
  it(`a full disk: the prune still deletes the dead entry, nothing throws, the record is lost${missing('mount')}`, async () => {
    if (missing('mount')) return
    const disk = tinyDisk(256)
    const dir = registryIn(disk)
    const ws = tempDir()
    const registry = new Registry({ dir })
    await writeDeadEntry(registry, ws)
    const file = join(dir, `${workspaceId(ws)}.json`)
    // A second name keeps the entry's page in use after the prune unlinks it: the disk stays full for the append.
    linkSync(file, join(disk, 'keep'))
    const filler = openSync(join(disk, 'filler'), 'w')
    const chunk = Buffer.alloc(4096, 1)
    try {
      for (;;) writeSync(filler, chunk)
    } catch (error) {
      expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC')
    } finally {
      closeSync(filler)
    }
    expect(appendHistory(dir, record('no room'))).toBe(false)
    const report = await registry.prune()
    expect(report.map((item) => item.reason)).toEqual(['exited'])
    expect(existsSync(file)).toBe(false)
    expect(await registry.history()).toEqual([])
  })

  it(`a read-only folder: prune and list degrade to filtering, history still reads, nothing throws${missing('mount')}`, async () => {
    if (missing('mount')) return
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await writeDeadEntry(registry, ws)
    appendHistory(dir, record('earlier'))
    const view = new Registry({ dir: readOnlyView(dir) })
    expect(appendHistory(view.dir, record('refused'))).toBe(false)
    await view.prune()
    expect(await view.list()).toEqual([])
    expect((await view.history()).map((r) => r.name)).toEqual(['earlier'])
  })
})

describe('CLI', () => {
  it('wsreg history lists ends newest first; --json, a ref and --since filter them', async () => {
    const { root, dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const other = join(root, 'other')
    mkdirSync(other)
    await writeDeadEntry(registry, ws)
    await registry.write({ cwd: other, pid: 0, name: 'other\u001b[31m' })
    await registry.prune()
    await registry.remove(other)
    const table = await runCli(['history', '--dir', dir])
    expect(table.code).toBe(0)
    const rows = table.stdout.trim().split('\n')
    expect(rows[0]).toMatch(/^ENDED\s+EVENT\s+REASON\s+BY\s+PID\s+NAME\s+CWD$/)
    expect(rows[1]).toMatch(/removed\s+-\s+\d+\s+0\s+other\\e\[31m/)
    expect(rows[2]).toMatch(/pruned\s+exited/)
    const json = await runCli(['history', ws, '--json', '--dir', dir])
    expect((JSON.parse(json.stdout) as HistoryRecord[]).map((r) => r.event)).toEqual(['pruned'])
    const byName = await runCli(['history', 'other\u001b[31m', '--json', '--dir', dir])
    expect((JSON.parse(byName.stdout) as HistoryRecord[]).map((r) => r.event)).toEqual(['removed'])
    const later = await runCli(['history', '--since', new Date(Date.now() + 60_000).toISOString(), '--json', '--dir', dir])
    expect(JSON.parse(later.stdout)).toEqual([])
    expect((await runCli(['history', '--since', 'yesterday-ish', '--dir', dir])).code).toBe(2)
  })

  it('wsreg show of a workspace that is gone says when and why it ended (exit 4)', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const child = sleeper()
    await registry.write({ cwd: ws, pid: child.pid })
    child.kill('SIGKILL')
    await exited(child)
    // The show itself finds the entry dead and prunes it, then tells what it did.
    const shown = await runCli(['show', ws, '--dir', dir])
    expect(shown.code).toBe(4)
    expect(shown.stderr).toMatch(/^No workspace .* it ended: exited, pruned \d+s ago by pid \d+ \(\d{4}-/)
    const again = await runCli(['--json', 'show', workspaceId(ws), '--dir', dir])
    expect(again.code).toBe(4)
    expect(JSON.parse(again.stderr)).toMatchObject({ error: { code: 'E_NOT_FOUND', ended: { event: 'pruned', reason: 'exited', cwd: ws } } })
    const never = await runCli(['show', join(ws, 'never'), '--dir', dir])
    expect(never.stderr).toMatch(/^No workspace \S+ in \S+\n$/)
  })
})

describe('watcher', () => {
  it('emits nothing for history writes and rotations', async () => {
    const { root, dir } = sandbox()
    const registry = new Registry({ dir })
    mkdirSync(dir, { mode: 0o700 })
    const watcher = registry.watch()
    const events: RegistryEvent[] = []
    for (const name of ['ready', 'up', 'down', 'change'] as const) watcher.on(name, (event: RegistryEvent) => events.push(event))
    try {
      await waitFor(() => events.some((event) => event.type === 'ready'), 4000, 'ready')
      for (let i = 0; i < 800; i++) appendHistory(dir, record(`w${i}`.padEnd(1500, '.'))) // crosses a rotation
      expect(existsSync(join(dir, HISTORY_OLD_FILE))).toBe(true)
      // A real entry after them: its `up` is the first event, so nothing came before it.
      const cwd = join(root, 'marker')
      mkdirSync(cwd)
      await registry.write({ cwd })
      await waitFor(() => events.some((event) => event.type === 'up'), 4000, 'up')
      expect(events.map((event) => event.type)).toEqual(['ready', 'up'])
    } finally {
      await watcher.close()
    }
  })
})
