import { spawn, spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Registry } from '../src/registry.js'
import { CLI, exited, runCli, sandbox, sleeper, track, waitFor } from './helpers.js'

/** Pids of the live (not zombie) processes in process group `group`, read from /proc. */
function groupMembers(group: number): number[] {
  const members: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8')
    } catch {
      continue // ended while we looked
    }
    // Fields after the command name (which may hold spaces and parentheses): state ppid pgrp …
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(pgrp) === group && state !== 'Z') members.push(Number(name))
  }
  return members
}

describe('wsreg run owns what it starts', () => {
  it.skipIf(process.platform !== 'linux')('reap --group ends everything run started: no process of its group survives', async () => {
    const { dir, ws } = sandbox()
    const run = track(spawn(process.execPath, [CLI, '--dir', dir, 'run', '--cwd', ws, '--name', 'tree', '--', 'sh', '-c', 'sleep 300 & sleep 300'], { stdio: 'ignore' }))
    const registry = new Registry({ dir })
    const [entry] = await waitFor(async () => ((await registry.list()).length ? registry.list() : undefined), 10_000, 'the run entry')
    const leader = entry?.pid as number
    await waitFor(() => groupMembers(leader).length >= 3, 10_000, 'sh and both sleeps in the group')
    const reaped = await runCli(['reap', 'tree', '--group', '--grace', '5000', '--dir', dir])
    expect(reaped.stderr).toBe('')
    expect(reaped.code).toBe(0)
    await waitFor(() => groupMembers(leader).length === 0, 10_000, 'an empty process group')
    expect(await exited(run)).toEqual({ code: null, signal: 'SIGTERM' })
  })

  it('--cwd must exist: a clear message and exit 1, never "command not found"', async () => {
    const { dir, root } = sandbox()
    const result = await runCli(['run', '--cwd', join(root, 'missing'), '--dir', dir, '--', 'true'])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`cannot run in ${join(root, 'missing')}: no such folder`)
    expect(result.stderr).not.toContain('command not found')
    const json = await runCli(['--json', 'run', '--cwd', root, '--dir', dir, '--', 'no-such-command-wsreg-test'])
    expect(json.code).toBe(127)
    expect(JSON.parse(json.stderr)).toMatchObject({ error: { code: 'E_COMMAND_NOT_FOUND', message: expect.stringContaining('command not found') } })
  })

  it('--lock --wait MS waits, then exits 3 with advice in the command\'s words; --meta K=V is repeatable', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const release = await registry.lock(ws)
    const held = await runCli(['run', '--lock', '--wait', '50', '--cwd', ws, '--dir', dir, '--', 'true'])
    await release()
    expect(held.code).toBe(3)
    expect(held.stderr).toContain(`by pid ${process.pid}`)
    expect(held.stderr).toContain('retry with --wait MS')
    expect(held.stderr).not.toContain('waitMs')
    const run = track(spawn(process.execPath, [CLI, '--dir', dir, 'run', '--lock', '--wait', '1000', '--cwd', ws, '--meta', 'branch=main', '--meta', 'expr=a=b', '--', process.execPath, '-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' }))
    const [entry] = await waitFor(async () => ((await registry.list()).length ? registry.list() : undefined), 10_000, 'the run entry')
    expect(entry?.meta).toEqual({ branch: 'main', expr: 'a=b' })
    run.kill('SIGTERM')
    expect(await exited(run)).toEqual({ code: null, signal: 'SIGTERM' })
  })

  it.skipIf(process.platform !== 'win32')('a .cmd shim starts through cmd.exe with its arguments intact (not run here: needs Windows)', async () => {
    const { dir, ws } = sandbox()
    writeFileSync(join(ws, 'shim.cmd'), '@echo off\r\necho [%~1] [%~2]\r\nexit /b 3\r\n')
    const result = spawnSync(process.execPath, [CLI, '--dir', dir, 'run', '--cwd', ws, '--', 'shim', 'a b', 'x&y'], { encoding: 'utf8' })
    expect(result.status).toBe(3)
    expect(result.stdout).toContain('[a b] [x&y]')
  })
})

describe('wsreg reap: refusals are runtime failures (exit 1), never usage errors', () => {
  it('reap --orphans reaps each orphan it may and reports each it may not', async () => {
    const { dir, root } = sandbox()
    const registry = new Registry({ dir })
    const follower = sleeper() // in the test's process group: it does not lead one, so --group must refuse it
    const leader = sleeper({ detached: true })
    for (const [name, child] of [['follower', follower], ['leader', leader]] as const) {
      const cwd = join(root, name)
      await registry.write({ cwd, pid: child.pid, name })
      rmSync(cwd, { recursive: true, force: true })
    }
    const single = await runCli(['reap', 'follower', '--group', '--dir', dir])
    expect(single.code).toBe(1)
    expect(single.stderr).toContain('does not lead its process group')
    const all = await runCli(['reap', '--orphans', '--group', '--grace', '5000', '--dir', dir])
    expect(all.code).toBe(1)
    expect(all.stdout).toContain(`terminated pid ${leader.pid} of leader`)
    expect(all.stderr).toContain(`Pid ${follower.pid} does not lead its process group`)
    expect(await exited(leader)).toEqual({ code: null, signal: 'SIGTERM' })
    expect(follower.exitCode).toBe(null)
    expect((await registry.orphans()).map((row) => row.name)).toEqual(['follower'])
  })
})
