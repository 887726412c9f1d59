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
    expect(JSON.parse(json.stderr)).toMatchObject({ error: { code: 'E_AMBIGUOUS', matches: [{ name: 'web' }, { name: 'web' }] } })
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
