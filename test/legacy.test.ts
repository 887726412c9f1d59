import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { workspaceId } from '../src/paths.js'
import { Registry } from '../src/registry.js'
import { ROOT, sandbox, filesIn } from './helpers.js'

/** Copy `fixtures/legacy` into a fresh registry folder (fresh mtimes; HOST → this host). */
function legacyRegistry(): { dir: string; registry: Registry } {
  const { dir } = sandbox()
  mkdirSync(dir, { mode: 0o700 })
  const source = join(ROOT, 'fixtures', 'legacy')
  for (const name of readdirSync(source)) {
    writeFileSync(join(dir, name), readFileSync(join(source, name), 'utf8').replace('"HOST"', JSON.stringify(hostname())), { mode: 0o600 })
  }
  return { dir, registry: new Registry({ dir }) }
}

const id = workspaceId

describe('legacy migration', () => {
  it('list folds <id>-<pid>.json files into <id>.json: live beats idle beats dead', async () => {
    const { dir, registry } = legacyRegistry()
    const entries = await registry.list()
    expect(entries.map((entry) => [entry.cwd, entry.name, entry.pid])).toEqual([
      ['/opt', 'opt-idle', 0],
      ['/', 'root-new', 1],
      ['/usr', 'usr-live', 1],
      ['/var', 'var-idle', 0],
    ])
    expect(filesIn(dir).sort()).toEqual([`${id('/')}.json`, `${id('/opt')}.json`, `${id('/usr')}.json`, `${id('/var')}.json`].sort())
    const usr = JSON.parse(readFileSync(join(dir, `${id('/usr')}.json`), 'utf8'))
    expect(usr).toMatchObject({ version: 1, id: id('/usr'), cwd: '/usr', pid: 1, host: hostname() })
    // Migration records nothing of this machine: an identity inferred by a clock is never taken as the owner's own.
    expect(usr.pidStartTime).toBeNull()
    expect(JSON.parse(readFileSync(join(dir, `${id('/var')}.json`), 'utf8')).meta).toEqual({ from: 'legacy' })
  })

  it('never lists a workspace twice, and prune:false changes nothing on disk', async () => {
    const { dir, registry } = legacyRegistry()
    const before = readdirSync(dir).sort()
    const entries = await registry.list({ prune: false })
    expect(new Set(entries.map((entry) => entry.cwd)).size).toBe(entries.length)
    expect(entries.map((entry) => entry.name)).toEqual(['opt-idle', 'root-new', 'usr-live', 'var-idle'])
    expect(readdirSync(dir).sort()).toEqual(before)
  })

  it('read migrates the workspace it reads', async () => {
    const { dir, registry } = legacyRegistry()
    expect(await registry.read('/var')).toMatchObject({ name: 'var-idle', pid: 0 })
    expect(readdirSync(dir)).toContain(`${id('/var')}.json`)
    expect(readdirSync(dir)).not.toContain(`${id('/var')}-0.json`)
    expect(await registry.read('/etc')).toBeUndefined()
    expect(readdirSync(dir).some((name) => name.startsWith(id('/etc')))).toBe(false)
  })

  it('among live candidates the canonical file wins over a legacy one', async () => {
    const { dir } = sandbox()
    const registry = new Registry({ dir })
    const canonical = await registry.write({ cwd: '/usr', name: 'canonical' })
    writeFileSync(join(dir, `${id('/usr')}-1.json`), JSON.stringify({ cwd: '/usr', name: 'legacy', pid: 1, startedAt: '2099-01-01T00:00:00.000Z' }))
    expect(await registry.list()).toEqual([canonical])
    expect(filesIn(dir)).toEqual([`${id('/usr')}.json`])
  })

  it('prune reports the migration and the removed losers', async () => {
    const { registry } = legacyRegistry()
    const report = await registry.prune()
    const reasons = report.map((item) => `${item.cwd}:${item.reason}`).sort()
    expect(reasons).toEqual(
      ['/:legacy-migrated', '/etc:exited', '/etc:exited', '/opt:exited', '/usr:exited', '/usr:legacy-migrated', '/var:legacy-migrated'].sort(),
    )
  })
})

describe('corrupt fixtures', () => {
  it('are skipped by list, shown by listInfo({all}), quarantined by prune and never deleted', async () => {
    const { dir } = sandbox()
    mkdirSync(dir, { mode: 0o700 })
    const source = join(ROOT, 'fixtures', 'corrupt')
    for (const name of readdirSync(source)) copyFileSync(join(source, name), join(dir, name))
    const { symlinkSync, unlinkSync } = await import('node:fs')
    unlinkSync(join(dir, 'a000000000000007.json'))
    symlinkSync('/etc/hostname', join(dir, 'a000000000000007.json'))
    const registry = new Registry({ dir })
    expect(await registry.list()).toEqual([])
    expect(await registry.read('/tmp')).toBeUndefined()
    const corrupt = (await registry.listInfo({ all: true })).filter((row) => row.status === 'corrupt')
    expect(corrupt).toHaveLength(8)
    const report = await registry.prune()
    expect(report.filter((item) => item.reason === 'corrupt')).toHaveLength(8)
    expect(readdirSync(join(dir, '.quarantine'))).toHaveLength(8)
    expect(filesIn(dir).sort()).toEqual(['.quarantine', 'a000000000000006.json.tmp-1-1-abcd', 'notes.txt'])
    expect(readFileSync('/etc/hostname', 'utf8').length).toBeGreaterThan(0) // the symlink target was not touched
  })
})
