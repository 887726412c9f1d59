import { chmodSync, existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { workspaceId } from '../src/paths.js'
import { Registry } from '../src/registry.js'
import { runCli, sandbox } from './helpers.js'

/** A registry with `api` (once), `web` (twice, at two folders) and a cwd named `api` that is not registered. */
async function named() {
  const box = sandbox()
  const registry = new Registry({ dir: box.dir })
  const folder = (name: string) => {
    const path = join(box.root, name)
    mkdirSync(path)
    return path
  }
  const api = folder('api-folder')
  const web1 = folder('web-one')
  const web2 = folder('web-two')
  await registry.register(api, 'api')
  await registry.register(web1, 'web')
  await registry.register(web2, 'web')
  return { ...box, registry, api, web1, web2 }
}

describe('workspace refs: an id, a path, or a unique name', () => {
  it('show, path, reap, history and rm accept a name that matches exactly one workspace', async () => {
    const { dir, root, api } = await named()
    const cli = (...args: string[]) => runCli([...args, '--dir', dir], { cwd: root })
    expect(JSON.parse((await cli('show', 'api', '--json')).stdout)).toMatchObject({ cwd: api, name: 'api' })
    expect((await cli('path', 'api')).stdout).toBe(`${join(dir, workspaceId(api))}.json\n`)
    expect((await cli('reap', 'api', '--dry-run')).code).toBe(0)
    expect((await cli('rm', 'api')).code).toBe(0)
    expect(existsSync(join(dir, `${workspaceId(api)}.json`))).toBe(false)
    expect(JSON.parse((await cli('history', 'api', '--json')).stdout)).toMatchObject([{ id: workspaceId(api), event: 'removed' }])
    expect((await cli('show', 'api')).code).toBe(4)
  })

  it('a name matching several workspaces exits 2 listing each with id, name and cwd', async () => {
    const { dir, root, web1, web2 } = await named()
    const commands = ['show', 'rm', 'reap', 'path']
    const results = await Promise.all(commands.map((command) => runCli([command, 'web', '--dir', dir], { cwd: root })))
    for (const [index, result] of results.entries()) {
      expect(result.code, commands[index]).toBe(2)
      expect(result.stderr).toContain(`${workspaceId(web1)}  web  ${web1}`)
      expect(result.stderr).toContain(`${workspaceId(web2)}  web  ${web2}`)
    }
    const json = await runCli(['show', 'web', '--json', '--dir', dir], { cwd: root })
    const { error } = JSON.parse(json.stderr)
    expect(error.code).toBe('E_AMBIGUOUS')
    expect(error.matches.sort((a: { cwd: string }, b: { cwd: string }) => a.cwd.localeCompare(b.cwd))).toEqual([
      { id: workspaceId(web1), name: 'web', cwd: web1 },
      { id: workspaceId(web2), name: 'web', cwd: web2 },
    ])
    expect((await runCli(['show', workspaceId(web1), '--dir', dir])).code).toBe(0)
  })

  it('an id comes first, then an existing path, then a name; an unknown name exits 4', async () => {
    const { dir, root, api, registry } = await named()
    // ./web-one exists here and is registered as "web": the path wins over the ambiguous name.
    expect(JSON.parse((await runCli(['show', 'web-one', '--json', '--dir', dir], { cwd: root })).stdout)).toMatchObject({ name: 'web' })
    // A folder named like a workspace but not registered falls through to the name.
    mkdirSync(join(root, 'api'))
    expect(JSON.parse((await runCli(['show', 'api', '--json', '--dir', dir], { cwd: root })).stdout)).toMatchObject({ cwd: api })
    await registry.remove(api)
    const missing = await runCli(['show', 'nothing-by-that-name', '--json', '--dir', dir], { cwd: root })
    expect(missing.code).toBe(4)
    expect(JSON.parse(missing.stderr)).toMatchObject({ error: { code: 'E_NOT_FOUND' } })
  })
})

describe('errors with --json', () => {
  it('a usage error and a registry error are {"error":{"code","message"}} on stderr', async () => {
    const { dir } = sandbox()
    const usage = await runCli(['--json', 'history', '--since', 'whenever', '--dir', dir])
    expect(usage.code).toBe(2)
    expect(JSON.parse(usage.stderr)).toMatchObject({ error: { code: 'E_USAGE', message: expect.stringContaining('--since') } })
    mkdirSync(dir, { mode: 0o777 })
    chmodSync(dir, 0o777)
    const unsafe = await runCli(['ls', '--json', '--dir', dir])
    expect(unsafe.code).toBe(1)
    expect(JSON.parse(unsafe.stderr)).toMatchObject({ error: { code: 'E_UNSAFE_DIR', message: expect.stringContaining(dir) } })
  })
})

describe('wsreg ls shaping', () => {
  it('-o wide adds ID, -q prints ids only, --no-headers drops the header, --status filters; show --json has mtime', async () => {
    const { dir, api, web1, web2 } = await named()
    const [wide, quiet, bare, idle, bad, shown] = await Promise.all([
      runCli(['ls', '-o', 'wide', '--dir', dir]),
      runCli(['ls', '-q', '--dir', dir]),
      runCli(['ls', '--no-headers', '--dir', dir]),
      runCli(['ls', '--status', 'idle,orphan', '--json', '--dir', dir]),
      runCli(['ls', '--status', 'sleepy', '--dir', dir]),
      runCli(['show', api, '--json', '--dir', dir]),
    ])
    expect(wide.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+STATUS\s+PID\s+UPTIME\s+CWD\s+URL$/)
    expect(wide.stdout).toMatch(new RegExp(`^${workspaceId(api)}\\s+api\\s+idle`, 'm'))
    expect(quiet.stdout.split('\n').filter(Boolean).sort()).toEqual([api, web1, web2].map((cwd) => workspaceId(cwd)).sort())
    expect(bare.stdout).not.toMatch(/NAME/)
    expect(bare.stdout.trim().split('\n')).toHaveLength(3)
    expect(JSON.parse(idle.stdout)).toHaveLength(3) // all three are idle
    expect(bad.code).toBe(2)
    expect(JSON.parse(shown.stdout).mtime).toMatch(/^\d{4}-\d\d-\d\dT/)
  })

  it('--all-apps lists every app under the state folder with an APP column, and app in --json rows', async () => {
    const { root } = sandbox()
    const state = join(root, 'state')
    for (const app of ['wsreg', 'other-tool']) {
      const cwd = join(root, `${app}-ws`)
      mkdirSync(cwd)
      await new Registry({ dir: join(state, app, 'workspaces') }).register(cwd, `${app} workspace`)
    }
    const env = { XDG_STATE_HOME: state, WSREG_REGISTRY_DIR: '' }
    const [table, json] = await Promise.all([runCli(['ls', '--all-apps'], { env }), runCli(['ls', '--all-apps', '--json'], { env })])
    expect(table.stdout).toMatch(/^APP\s+NAME\s+STATUS/)
    expect(table.stdout).toMatch(/^other-tool\s+other-tool workspace\s+idle/m)
    expect(JSON.parse(json.stdout)).toMatchObject([{ app: 'other-tool', name: 'other-tool workspace' }, { app: 'wsreg', name: 'wsreg workspace' }])
  })
})
