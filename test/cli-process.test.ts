import { spawnSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { Registry } from '../src/index.js'
import { CLI, FIXTURES, running, sandbox, start } from './children.js'

function wsreg(dir: string, ...args: string[]) {
  const result = spawnSync(process.execPath, [CLI, '--dir', dir, ...args], { encoding: 'utf8' })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

function listed(dir: string): Array<{ pid: number; name: string; status: string }> {
  return JSON.parse(wsreg(dir, 'ls', '--json').stdout)
}

describe('wsreg run', () => {
  it('shows the child in ls while it runs, removes it after, and exits with its code', async () => {
    const { dir, cwd } = sandbox()
    const run = start(CLI, ['--dir', dir, 'run', '--cwd', cwd, '--name', 'demo', '--url', 'http://127.0.0.1:9', '--', process.execPath, `${FIXTURES}child.mjs`])
    const { child } = await run.next()
    expect(child).not.toBe(run.pid)
    expect(listed(dir)).toMatchObject([{ pid: child, name: 'demo', status: 'alive', cwd, url: 'http://127.0.0.1:9' }])
    run.process.stdin?.write('exit 9\n')
    expect(await run.ended).toEqual({ code: 9, signal: null })
    expect(listed(dir)).toEqual([])
  })

  for (const [signal, code] of [['SIGINT', 42], ['SIGTERM', 55]] as const) {
    it(`passes ${signal} through to the child and exits with the child's code`, async () => {
      const { dir, cwd } = sandbox()
      const run = start(CLI, ['--dir', dir, 'run', '--cwd', cwd, '--', process.execPath, `${FIXTURES}child.mjs`])
      await run.next()
      run.process.kill(signal)
      expect(await run.next()).toEqual({ got: signal })
      expect(await run.ended).toEqual({ code, signal: null })
      expect(listed(dir)).toEqual([])
    })
  }

  it('dies by the signal that killed the child', async () => {
    const { dir, cwd } = sandbox()
    const run = start(CLI, ['--dir', dir, 'run', '--cwd', cwd, '--', process.execPath, `${FIXTURES}child.mjs`])
    const { child } = await run.next()
    process.kill(child, 'SIGKILL')
    expect(await run.ended).toEqual({ code: null, signal: 'SIGKILL' })
    expect(listed(dir)).toEqual([])
  })

  it('exits 3 with --lock while the workspace lock is held, without running the command', async () => {
    const { dir, cwd } = sandbox()
    const release = await new Registry({ dir }).lock(cwd)
    const result = wsreg(dir, 'run', '--lock', '--cwd', cwd, '--', process.execPath, '-e', 'console.log("ran")')
    expect(result.code).toBe(3)
    expect(result.stdout).toBe('')
    expect(result.stderr).toContain(`pid ${process.pid}`)
    await release()
    expect(wsreg(dir, 'run', '--lock', '--cwd', cwd, '--', process.execPath, '-e', 'console.log("ran")').stdout).toBe('ran\n')
  })

  it('runs the command unregistered, with a warning, while another process claims the workspace', async () => {
    const { dir, cwd } = sandbox()
    const holder = start('claimer.mjs', [dir, cwd, 'wait'])
    await holder.next()
    const result = wsreg(dir, 'run', '--cwd', cwd, '--', process.execPath, '-e', 'process.exit(7)')
    expect(result.code).toBe(7)
    expect(result.stderr).toContain(`already claimed by pid ${holder.pid} (http://127.0.0.1:4321)`)
    expect(listed(dir)).toMatchObject([{ pid: holder.pid }])
  })

  it('exits 127 when the command does not exist', () => {
    const { dir, cwd } = sandbox()
    expect(wsreg(dir, 'run', '--cwd', cwd, '--', 'no-such-command-wsreg-test').code).toBe(127)
    expect(listed(dir)).toEqual([])
  })
})

describe('wsreg lock', () => {
  it('runs the command under the lock and exits with its code, or 3 when held', async () => {
    const { dir, cwd } = sandbox()
    const inner = `process.exit(require('child_process').spawnSync(process.execPath, [${JSON.stringify(CLI)}, '--dir', ${JSON.stringify(dir)}, 'lock', ${JSON.stringify(cwd)}, '--', 'true']).status + 10)`
    // The inner lock attempt is refused (3) while the outer one holds: 3 + 10.
    expect(wsreg(dir, 'lock', cwd, '--', process.execPath, '-e', inner).code).toBe(13)
    expect(wsreg(dir, 'lock', cwd, '--wait', '50', '--', process.execPath, '-e', 'process.exit(5)').code).toBe(5)
  })
})

describe('wsreg reap and orphans', () => {
  it('reaps a workspace by path with a grace period', async () => {
    const { dir, cwd } = sandbox()
    const stubborn = start('stubborn.mjs', [])
    await stubborn.next()
    await new Registry({ dir }).write({ cwd, pid: stubborn.pid })
    expect(wsreg(dir, 'reap', cwd, '--dry-run').stdout).toContain(`would stop pid ${stubborn.pid}`)
    expect(running(stubborn.pid)).toBe(true)
    const result = wsreg(dir, 'reap', cwd, '--grace', '100', '--json')
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ outcome: 'killed', pid: stubborn.pid, removed: true })
    expect(await stubborn.ended).toEqual({ code: null, signal: 'SIGKILL' })
    expect(wsreg(dir, 'reap', cwd).code).toBe(4)
  })

  it('lists orphans and reaps them all', async () => {
    const { dir, cwd } = sandbox()
    const child = start('child.mjs', [])
    await child.next()
    await new Registry({ dir }).write({ cwd, pid: child.pid })
    expect(JSON.parse(wsreg(dir, 'orphans', '--json').stdout)).toEqual([])
    rmSync(cwd, { recursive: true })
    expect(JSON.parse(wsreg(dir, 'orphans', '--json').stdout)).toMatchObject([{ pid: child.pid, status: 'orphan', reason: 'cwd-missing' }])
    expect(JSON.parse(wsreg(dir, 'reap', '--orphans', '--json').stdout)).toMatchObject([{ pid: child.pid, outcome: 'terminated' }])
    expect(await child.ended).toEqual({ code: 55, signal: null })
    expect(JSON.parse(wsreg(dir, 'orphans', '--json').stdout)).toEqual([])
  })
})
