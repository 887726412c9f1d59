import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Registry } from '../src/index.js'
import { CLI, runCli, sandbox, tempDir, track } from './helpers.js'

/** What bash's completion offers for each line (the word under the cursor last), in one bash with `wsreg completion bash` sourced. */
function complete(lines: string[], env: NodeJS.ProcessEnv): string[][] {
  const script = [
    'eval "$(wsreg completion bash)"',
    'for line in "$@"; do',
    '  read -r -a COMP_WORDS <<< "$line"; case "$line" in *" ") COMP_WORDS+=("");; esac',
    '  COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _wsreg; printf "%s\\n" "${COMPREPLY[@]}" "--"',
    'done',
  ].join('\n')
  const result = spawnSync('bash', ['-c', script, 'bash', ...lines], { env, encoding: 'utf8' })
  expect(result.stderr).toBe('')
  return result.stdout.split('--\n').slice(0, -1).map((block) => block.split('\n').filter(Boolean))
}

describe('wsreg completion', () => {
  it('bash completes commands, options, and workspace names and ids from the registry', async () => {
    const { root, dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const owner = track(spawn('sleep', ['300'], { stdio: 'ignore' }))
    const entry = await registry.write({ cwd: ws, pid: owner.pid, name: 'api' })
    await registry.register(root, 'web')
    const bin = tempDir()
    writeFileSync(join(bin, 'wsreg'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`)
    chmodSync(join(bin, 'wsreg'), 0o755)
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, WSREG_REGISTRY_DIR: dir }
    const ids = (await registry.listInfo({ prune: false })).map((row) => row.id)
    expect(complete(['wsreg l', 'wsreg ls --a', 'wsreg show ', 'wsreg reap ap', `wsreg rm ${entry.id.slice(0, 4)}`, 'wsreg completion ', 'wsreg run -- sl'], env)).toEqual([
      ['ls', 'lock'],
      ['--app', '--all', '--all-apps'],
      ['api', 'web', ...ids],
      ['api'],
      [entry.id],
      ['bash', 'zsh', 'fish'],
      [],
    ])
  })

  const hasFish = spawnSync('sh', ['-c', 'command -v fish']).status === 0
  it.skipIf(!hasFish)(`fish completes workspace names and ids with the script sourced${hasFish ? '' : ' (skipped: fish is not installed)'}`, async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const entry = await registry.register(ws, 'api')
    const bin = tempDir()
    writeFileSync(join(bin, 'wsreg'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`)
    chmodSync(join(bin, 'wsreg'), 0o755)
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, WSREG_REGISTRY_DIR: dir }
    const result = spawnSync('fish', ['--no-config', '-c', 'wsreg completion fish | source; complete -C "wsreg show "'], { cwd: bin, env, encoding: 'utf8' })
    expect(result.stderr).toBe('')
    expect(result.stdout.split('\n')).toEqual(expect.arrayContaining(['api', entry.id]))
  })

  it('prints a zsh script, and refuses another shell with a usage error', async () => {
    // bash and fish scripts are run by the tests above.
    const [zsh, other] = await Promise.all(['zsh', 'tcsh'].map((shell) => runCli(['completion', shell])))
    expect(zsh?.stdout).toContain('compdef _wsreg wsreg')
    expect(other).toMatchObject({ code: 2, stdout: '' })
  })
})
