import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { wantsColor } from '../src/cli/output.js'
import { workspaceId } from '../src/paths.js'
import { Registry } from '../src/registry.js'
import { CLI, ROOT, runCli, sandbox, writeDeadEntry, filesIn } from './helpers.js'

async function populated() {
  const box = sandbox()
  const registry = new Registry({ dir: box.dir })
  await registry.write({ cwd: box.ws, url: 'http://127.0.0.1:1/' })
  const idle = join(box.root, 'idle')
  mkdirSync(idle)
  await registry.register(idle, 'an idle one')
  return { ...box, registry, idle }
}

describe('wsreg ls', () => {
  it('prints a table with name, status, pid, uptime, cwd and url on stdout', async () => {
    const { dir, ws } = await populated()
    const result = await runCli(['ls', '--dir', dir])
    expect(result.code).toBe(0)
    const lines = result.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^NAME\s+STATUS\s+PID\s+UPTIME\s+CWD\s+URL$/)
    expect(lines[1]).toMatch(/^an idle one\s+idle\s+0\s+-\s+\S+/)
    expect(lines[2]).toMatch(new RegExp(`^ws\\s+alive\\s+${process.pid}\\s+\\d+[smhd]\\S*\\s+${ws}\\s+http://127.0.0.1:1/$`))
    expect(result.stdout).not.toContain('\u001b[')
  })

  it('--json prints an array of entries, each with its status', async () => {
    const { dir, ws } = await populated()
    const result = await runCli(['--json', 'ls', '--dir', dir])
    const rows = JSON.parse(result.stdout)
    expect(rows.map((row: { name: string; status: string }) => [row.name, row.status])).toEqual([
      ['an idle one', 'idle'],
      ['ws', 'alive'],
    ])
    expect(rows[1]).toMatchObject({ cwd: ws, id: workspaceId(ws), pid: process.pid, path: join(dir, `${workspaceId(ws)}.json`) })
  })

  it('--all shows dead and corrupt rows; --no-prune leaves the disk as it was', async () => {
    const { dir, root, registry } = await populated()
    const deadWs = join(root, 'dead')
    mkdirSync(deadWs)
    await writeDeadEntry(registry, deadWs)
    writeFileSync(join(dir, 'ffffffffffffffff.json'), 'nope', { mode: 0o600 })
    const before = readdirSync(dir).sort()
    const result = await runCli(['ls', '--all', '--no-prune', '--json', '--dir', dir])
    expect(JSON.parse(result.stdout).map((row: { status: string }) => row.status)).toEqual(['idle', 'alive', 'dead', 'corrupt'])
    expect(readdirSync(dir).sort()).toEqual(before)
    await runCli(['ls', '--dir', dir])
    expect(filesIn(dir)).toHaveLength(before.length - 1)
  })

  it('--probe adds a HEALTH column', async () => {
    const { dir } = await populated()
    const result = await runCli(['ls', '--probe', '--dir', dir])
    expect(result.stdout).toMatch(/HEALTH/)
    expect(result.stdout).toMatch(/alive\s+\S+\s+\S+\s+down/)
  })

  it('says so on stderr when the registry is empty', async () => {
    const { dir } = sandbox()
    const result = await runCli(['ls', '--dir', dir])
    expect(result).toMatchObject({ code: 0, stdout: '' })
    expect(result.stderr).toContain('No workspaces')
  })

  it('honours <APP>_REGISTRY_DIR through --app', async () => {
    const { dir } = await populated()
    const result = await runCli(['ls', '--app', 'my-tool', '--json'], { env: { MY_TOOL_REGISTRY_DIR: dir } })
    expect(JSON.parse(result.stdout)).toHaveLength(2)
  })
})

describe('wsreg show, path, rm', () => {
  it('show finds a workspace by path or by id; --json prints one entry with status', async () => {
    const { dir, ws } = await populated()
    const byPath = await runCli(['show', ws, '--dir', dir, '--json'])
    expect(JSON.parse(byPath.stdout)).toMatchObject({ cwd: ws, status: 'alive' })
    const byId = await runCli(['show', workspaceId(ws), '--dir', dir])
    expect(byId.stdout).toMatch(/^name\s+ws$/m)
    expect(byId.stdout).toMatch(/^status\s+alive$/m)
  })

  it('show exits 4 for a workspace that is not registered', async () => {
    const { dir, root } = await populated()
    expect((await runCli(['show', join(root, 'nope'), '--dir', dir])).code).toBe(4)
    expect((await runCli(['show', '0000000000000000', '--dir', dir])).code).toBe(4)
  })

  it('an argument that is neither an id, a path nor a known name is not found (exit 4), never a file name', async () => {
    const { dir } = await populated()
    for (const bad of ['abc', 'ABCDEF0123456789', '0123456789abcdef0', '..abc']) {
      const result = await runCli(['show', bad, '--dir', dir])
      expect(result.code, bad).toBe(4)
      expect(result.stderr).toContain(`No workspace ${bad}`)
    }
  })

  it('path prints the folder, or the entry file of a workspace', async () => {
    const { dir, ws } = await populated()
    expect((await runCli(['path', '--dir', dir])).stdout).toBe(`${dir}\n`)
    expect((await runCli(['path', ws, '--dir', dir])).stdout).toBe(`${join(dir, workspaceId(ws))}.json\n`)
  })

  it('rm removes an entry, then exits 4', async () => {
    const { dir, ws } = await populated()
    expect((await runCli(['rm', ws, '--dir', dir])).code).toBe(0)
    expect(existsSync(join(dir, `${workspaceId(ws)}.json`))).toBe(false)
    expect((await runCli(['rm', workspaceId(ws), '--dir', dir])).code).toBe(4)
  })
})

describe('wsreg prune and doctor', () => {
  it('prune --dry-run --json reports and changes nothing; prune acts', async () => {
    const { dir, root, registry } = await populated()
    const deadWs = join(root, 'dead')
    mkdirSync(deadWs)
    await writeDeadEntry(registry, deadWs)
    const dry = await runCli(['prune', '--dry-run', '--json', '--dir', dir])
    expect(JSON.parse(dry.stdout)).toEqual([expect.objectContaining({ cwd: deadWs, reason: 'exited' })])
    expect(existsSync(join(dir, `${workspaceId(deadWs)}.json`))).toBe(true)
    const real = await runCli(['prune', '--dir', dir])
    expect(real.stdout).toContain(`remove ${join(dir, workspaceId(deadWs))}.json (exited)`)
    expect(existsSync(join(dir, `${workspaceId(deadWs)}.json`))).toBe(false)
  })

  it('doctor exits 1 while problems remain and --fix makes the safe repairs', async () => {
    const { dir, ws } = await populated()
    writeFileSync(join(dir, 'ffffffffffffffff.json'), '{', { mode: 0o600 })
    chmodSync(join(dir, `${workspaceId(ws)}.json`), 0o644)
    chmodSync(dir, 0o770)
    const sick = await runCli(['doctor', '--dir', dir])
    expect(sick.code).toBe(1)
    expect(sick.stdout).toMatch(/problem .*writable by group or others/)
    const fixed = await runCli(['doctor', '--fix', '--dir', dir])
    expect(fixed.stdout).toMatch(/fixed +chmod 700/)
    expect(fixed.stdout).toMatch(/fixed +chmod 600/)
    expect(fixed.stdout).toMatch(/fixed +quarantined/)
    expect(fixed.code).toBe(0)
    const healthy = await runCli(['doctor', '--json', '--dir', dir])
    expect(healthy.code).toBe(0)
    expect(JSON.parse(healthy.stdout)).toMatchObject({ healthy: true, findings: [expect.objectContaining({ kind: 'quarantined', severity: 'note' })] })
    expect(readFileSync(join(dir, `${workspaceId(ws)}.json`), 'utf8')).toContain('"pid"')
  })
})

describe('wsreg globals', () => {
  it('--version prints the package version, --help the commands', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
    expect((await runCli(['--version'])).stdout).toBe(`${pkg.version}\n`)
    const help = await runCli(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/ls .*\n.*wsreg ls/)
  })

  it('an unknown command or option is a usage error (exit 2) on stderr', async () => {
    const unknown = await runCli(['frobnicate'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toMatch(/Unknown command/)
    expect(unknown.stdout).toBe('')
    expect((await runCli(['ls', '--bogus'])).code).toBe(2)
    expect((await runCli([])).code).toBe(2)
  })

  it('an unsafe registry folder is a failure with the fix in the message', async () => {
    const { dir } = await populated()
    chmodSync(dir, 0o777)
    const result = await runCli(['ls', '--dir', dir])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/chmod 700/)
  })

  it('colours only a TTY, and never with NO_COLOR', () => {
    expect(wantsColor({ isTTY: true }, {})).toBe(true)
    expect(wantsColor({ isTTY: true }, { NO_COLOR: '1' })).toBe(false)
    expect(wantsColor({ isTTY: false }, {})).toBe(false)
  })

  const hasScript = spawnSync('script', ['--version']).status === 0
  it.skipIf(!hasScript)(`colours wsreg ls on a real terminal, not with NO_COLOR, not into a pipe${hasScript ? '' : ' (skipped: no script(1))'}`, async () => {
    const { dir } = await populated()
    // script(1) gives the CLI a pseudo-terminal as stdout.
    const onTerminal = (noColor?: string) => {
      const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm' }
      delete env.NO_COLOR
      if (noColor !== undefined) env.NO_COLOR = noColor
      return spawnSync('script', ['-qec', `"${process.execPath}" "${CLI}" ls --dir "${dir}"`, '/dev/null'], { encoding: 'utf8', env }).stdout
    }
    expect(onTerminal()).toContain('\u001b[32malive')
    expect(onTerminal('1')).not.toContain('\u001b[')
    expect((await runCli(['ls', '--dir', dir], { env: { NO_COLOR: '' } })).stdout).not.toContain('\u001b[')
  })
})
