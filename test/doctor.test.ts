import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { diagnose, type Diagnosis, type FindingKind } from '../src/doctor.js'
import { workspaceId } from '../src/paths.js'
import { Registry } from '../src/registry.js'
import { deadPid, runCli, sandbox, filesIn } from './helpers.js'

const isRoot = process.getuid?.() === 0
const kinds = (diagnosis: Diagnosis) => diagnosis.findings.map((finding) => `${finding.severity}:${finding.kind}`)
const finding = (diagnosis: Diagnosis, kind: FindingKind) => diagnosis.findings.find((item) => item.kind === kind)

async function healthy() {
  const box = sandbox()
  const registry = new Registry({ dir: box.dir })
  await registry.write({ cwd: box.ws })
  return { ...box, registry, entry: join(box.dir, `${workspaceId(box.ws)}.json`) }
}

/** Rewrite an entry file's JSON in place (keeping mode 0600). */
function edit(path: string, patch: Record<string, unknown>): void {
  writeFileSync(path, `${JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), ...patch }, null, 2)}\n`, { mode: 0o600 })
}

describe('diagnose', () => {
  it('a fresh registry is healthy with no findings; a missing folder is a note', async () => {
    const { registry, root } = await healthy()
    expect(await diagnose(registry)).toMatchObject({ healthy: true, findings: [], fixed: [] })
    const missing = await diagnose(new Registry({ dir: join(root, 'nowhere') }))
    expect(kinds(missing)).toEqual(['note:missing-dir'])
    expect(missing.healthy).toBe(true)
  })

  it('unsafe-dir: a group-writable folder is a problem that --fix repairs with chmod 700', async () => {
    const { registry, dir } = await healthy()
    chmodSync(dir, 0o775)
    const sick = await diagnose(registry)
    expect(sick).toMatchObject({ healthy: false, findings: [{ kind: 'unsafe-dir', fixable: true }] })
    expect(sick.findings[0]?.message).toMatch(/chmod 700/)
    const fixed = await diagnose(registry, { fix: true })
    expect(fixed.fixed).toEqual([`chmod 700 ${dir}`])
    expect(fixed.healthy).toBe(true)
    expect(lstatSync(dir).mode & 0o777).toBe(0o700)
  })

  it('unsafe-dir: a symlinked folder is not fixable and --fix does nothing to it or its target', async () => {
    const { registry, dir, root } = await healthy()
    const link = join(root, 'link')
    symlinkSync(dir, link)
    chmodSync(dir, 0o777)
    const result = await diagnose(new Registry({ dir: link }), { fix: true })
    expect(result).toMatchObject({ healthy: false, fixed: [], findings: [{ kind: 'unsafe-dir', fixable: false }] })
    expect(lstatSync(dir).mode & 0o777).toBe(0o777)
    chmodSync(dir, 0o700)
    expect(await registry.list()).toHaveLength(1)
  })

  it.skipIf(!isRoot)('unsafe-dir: a folder owned by another user is not fixable', async () => {
    const { registry, dir } = await healthy()
    chownSync(dir, 65534, 65534)
    expect(await diagnose(registry, { fix: true })).toMatchObject({ healthy: false, fixed: [], findings: [{ kind: 'unsafe-dir', fixable: false }] })
  })

  it('dir-mode: a folder readable by others is a problem; --fix makes it 0700', async () => {
    const { registry, dir } = await healthy()
    chmodSync(dir, 0o755)
    expect(kinds(await diagnose(registry))).toEqual(['problem:dir-mode'])
    expect((await diagnose(registry, { fix: true })).healthy).toBe(true)
    expect(lstatSync(dir).mode & 0o777).toBe(0o700)
  })

  it('file-mode: an entry readable by others is a problem; --fix makes it 0600 and keeps its content', async () => {
    const { registry, entry } = await healthy()
    const before = readFileSync(entry, 'utf8')
    chmodSync(entry, 0o644)
    expect(finding(await diagnose(registry), 'file-mode')).toMatchObject({ severity: 'problem', path: entry, fixable: true })
    expect((await diagnose(registry, { fix: true })).fixed).toEqual([`chmod 600 ${entry}`])
    expect(lstatSync(entry).mode & 0o777).toBe(0o600)
    expect(readFileSync(entry, 'utf8')).toBe(before)
  })

  it.skipIf(!isRoot)('file-owner: an entry owned by another user is a problem --fix does not touch', async () => {
    const { registry, entry } = await healthy()
    chownSync(entry, 65534, 65534)
    chmodSync(entry, 0o644)
    const result = await diagnose(registry, { fix: true })
    expect(finding(result, 'file-owner')).toMatchObject({ severity: 'problem', fixable: false })
    expect(lstatSync(entry).mode & 0o777).toBe(0o644)
    expect(result.healthy).toBe(false)
  })

  it('corrupt: a problem --fix moves to quarantine (then a note), never deletes', async () => {
    const { registry, dir } = await healthy()
    const bad = join(dir, 'ffffffffffffffff.json')
    writeFileSync(bad, '{"torn', { mode: 0o600 })
    expect(finding(await diagnose(registry), 'corrupt')).toMatchObject({ severity: 'problem', path: bad, fixable: true })
    const fixed = await diagnose(registry, { fix: true })
    expect(fixed.fixed[0]).toMatch(new RegExp(`^quarantined ${bad} → ${dir}/\\.quarantine/`))
    expect(kinds(fixed)).toEqual(['note:quarantined'])
    expect(fixed.healthy).toBe(true)
    const [kept] = readdirSync(join(dir, '.quarantine'))
    expect(readFileSync(join(dir, '.quarantine', kept as string), 'utf8')).toBe('{"torn')
  })

  it('dead: an entry of an exited process is a problem --fix prunes', async () => {
    const { registry, root, dir } = await healthy()
    const gone = join(root, 'gone-ws')
    mkdirSync(gone)
    const pid = await deadPid()
    writeFileSync(join(dir, `${workspaceId(gone)}.json`), JSON.stringify({ ...(await registry.read(join(root, 'ws'))), id: workspaceId(gone), cwd: gone, pid }), { mode: 0o600 })
    expect(finding(await diagnose(registry), 'dead')).toMatchObject({ severity: 'problem', reason: 'exited', fixable: true })
    const fixed = await diagnose(registry, { fix: true })
    expect(fixed.fixed).toEqual([`removed ${join(dir, `${workspaceId(gone)}.json`)} (exited)`])
    expect(fixed.healthy).toBe(true)
  })

  it('legacy: a live per-process file is a note --fix migrates into <id>.json', async () => {
    const { registry, ws, dir, entry } = await healthy()
    const legacy = join(dir, `${workspaceId(ws)}-${process.pid}.json`)
    writeFileSync(legacy, readFileSync(entry), { mode: 0o600 })
    rmSync(entry)
    const found = await diagnose(registry)
    expect(finding(found, 'legacy')).toMatchObject({ severity: 'note', path: legacy, reason: 'legacy-migrated', fixable: true })
    expect(found.healthy).toBe(true)
    expect((await diagnose(registry, { fix: true })).fixed).toEqual([`migrated ${legacy} → ${workspaceId(ws)}.json`])
    expect(filesIn(dir)).toEqual([`${workspaceId(ws)}.json`])
  })

  it('stale-temp: debris older than a minute is a problem --fix sweeps; a fresh temp file is left alone', async () => {
    const { registry, dir, ws } = await healthy()
    const stale = join(dir, `${workspaceId(ws)}.json.tmp-1-1-00000000`)
    const fresh = join(dir, `${workspaceId(ws)}.json.tmp-2-2-11111111`)
    writeFileSync(stale, 'half', { mode: 0o600 })
    writeFileSync(fresh, 'in flight', { mode: 0o600 })
    const old = new Date(Date.now() - 5 * 60_000)
    utimesSync(stale, old, old)
    expect(kinds(await diagnose(registry))).toEqual(['problem:stale-temp'])
    expect((await diagnose(registry, { fix: true })).fixed).toEqual([`swept ${stale}`])
    expect(existsSync(stale)).toBe(false)
    expect(existsSync(fresh)).toBe(true)
  })

  it('orphan: a live owner whose workspace is gone is a problem --fix does not take on (it names wsreg reap)', async () => {
    const { registry, root, entry } = await healthy()
    rmSync(join(root, 'ws'), { recursive: true })
    const result = await diagnose(registry, { fix: true })
    expect(result.fixed).toEqual([])
    expect(result.findings).toMatchObject([{ severity: 'problem', kind: 'orphan', reason: 'cwd-missing', fixable: false }])
    expect(result.findings[0]?.message).toMatch(/wsreg reap [0-9a-f]{16}/)
    expect(result.healthy).toBe(false)
    expect(existsSync(entry)).toBe(true)
  })

  it('unknown: entries from another host or PID namespace are notes, kept by --fix', async () => {
    const { registry, root, dir, entry } = await healthy()
    edit(entry, { host: 'another-machine' })
    const box = join(root, 'container-ws')
    mkdirSync(box)
    await registry.write({ cwd: box })
    edit(join(dir, `${workspaceId(box)}.json`), { pidNamespace: '4026530000' })
    const result = await diagnose(registry, { fix: true })
    expect(result.fixed).toEqual([])
    expect(result.healthy).toBe(true)
    const notes = result.findings.map((item) => [item.kind, item.severity, item.reason, item.message]).sort()
    expect(notes).toMatchObject([
      ['unknown', 'note', 'foreign-host', expect.stringMatching(/another machine.*it is kept/)],
      ['unknown', 'note', 'foreign-pid-namespace', expect.stringMatching(/another PID namespace.*it is kept/)],
    ])
    expect(readdirSync(dir)).toHaveLength(2)
  })

  it('unsafe-quarantine: a symlinked .quarantine is a problem; --fix leaves the corrupt file where it is', async () => {
    const { registry, root, dir } = await healthy()
    const elsewhere = join(root, 'elsewhere')
    mkdirSync(elsewhere)
    writeFileSync(join(elsewhere, 'secret'), 'x')
    symlinkSync(elsewhere, join(dir, '.quarantine'))
    writeFileSync(join(dir, 'ffffffffffffffff.json'), 'bad', { mode: 0o600 })
    const result = await diagnose(registry, { fix: true })
    expect(result.fixed).toEqual([`could not quarantine ${join(dir, 'ffffffffffffffff.json')}`])
    expect(kinds(result).sort()).toEqual(['problem:corrupt', 'problem:unsafe-quarantine'])
    expect(result.findings.some((item) => item.path.includes('secret'))).toBe(false) // the link is never listed through
    expect(readdirSync(elsewhere)).toEqual(['secret'])
  })

  it('dir-mode of the quarantine folder is fixable; quarantined files are notes', async () => {
    const { registry, dir } = await healthy()
    mkdirSync(join(dir, '.quarantine'))
    chmodSync(join(dir, '.quarantine'), 0o755)
    writeFileSync(join(dir, '.quarantine', 'old.json'), 'x')
    expect(kinds(await diagnose(registry))).toEqual(['problem:dir-mode', 'note:quarantined'])
    const fixed = await diagnose(registry, { fix: true })
    expect(fixed.fixed).toEqual([`chmod 700 ${join(dir, '.quarantine')}`])
    expect(kinds(fixed)).toEqual(['note:quarantined'])
  })

  it('names the registry ignores are not touched; a lock record without a holder is a harmless note', async () => {
    const { registry, dir, ws } = await healthy()
    for (const name of [`${workspaceId(ws)}.lock`, 'README.txt', 'ABCDEF0123456789.json']) writeFileSync(join(dir, name), 'x', { mode: 0o644 })
    const before = readdirSync(dir).sort()
    const result = await diagnose(registry, { fix: true })
    expect(result).toMatchObject({ healthy: true, findings: [{ severity: 'note', kind: 'stale-lock-file', path: join(dir, `${workspaceId(ws)}.lock`) }], fixed: [] })
    expect(readdirSync(dir).sort()).toEqual(before)
  })
})

describe('wsreg doctor', () => {
  it('exits 1 while problems remain, --fix says what it did and leaves what it may not fix, --json is one document', async () => {
    const { dir, root, ws, entry } = await healthy()
    chmodSync(entry, 0o640)
    writeFileSync(join(dir, 'ffffffffffffffff.json'), '[', { mode: 0o600 })
    const orphanWs = join(root, 'orphan-ws')
    mkdirSync(orphanWs)
    await new Registry({ dir }).write({ cwd: orphanWs })
    rmSync(orphanWs, { recursive: true })
    const sick = await runCli(['doctor', '--dir', dir])
    expect(sick.code).toBe(1)
    expect(sick.stdout).toMatch(/problem +\S+: entry file is readable .* \[--fix repairs\]/)
    expect(sick.stdout).toMatch(/problem +\S+: pid \d+ still runs but its workspace .*`wsreg reap [0-9a-f]{16}`/)
    expect(sick.stderr).toContain(`Problems remain in ${dir}`)
    const fix = await runCli(['doctor', '--fix', '--dir', dir])
    expect(fix.code).toBe(1) // the orphan needs `wsreg reap`, which doctor never does
    expect(fix.stdout).toMatch(/^fixed +chmod 600 /m)
    expect(fix.stdout).toMatch(/^fixed +quarantined /m)
    const json = await runCli(['doctor', '--json', '--dir', dir])
    const report = JSON.parse(json.stdout)
    expect(report).toMatchObject({ dir, healthy: false, fixed: [] })
    expect(report.findings.map((item: { kind: string }) => item.kind).sort()).toEqual(['orphan', 'quarantined'])
    await new Registry({ dir }).remove(orphanWs)
    const well = await runCli(['doctor', '--fix', '--dir', dir])
    expect(well.code).toBe(0)
    expect(well.stderr).toContain('Nothing needed a safe repair')
    expect(well.stderr).toContain(`Registry ${dir} is healthy`)
    expect(await new Registry({ dir }).read(ws)).toMatchObject({ cwd: ws })
  })
})
