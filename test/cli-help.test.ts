import { describe, expect, it } from 'vitest'
import type { Command } from '../src/cli/command.js'
import { COMMANDS, GLOBAL_OPTIONS } from '../src/cli/commands.js'
import { commandHelp, flag } from '../src/cli/help.js'
import { runCli } from './helpers.js'

describe('wsreg help and usage messages', () => {
  it("each command's --help lists every option with one sentence and an example, on stdout", async () => {
    // Two through the built bin (the path a user takes); every command through the same renderer in-process.
    const bin = await Promise.all(['ls', 'run'].map((name) => runCli([name, '--help'])))
    for (const result of bin) expect(result).toMatchObject({ code: 0, stderr: '' })
    for (const name of Object.keys(COMMANDS).filter((candidate) => !candidate.startsWith('__'))) {
      const command = await (COMMANDS[name] as () => Promise<Command>)()
      const stdout = commandHelp(command)
      if (name === 'ls' || name === 'run') expect((bin[name === 'ls' ? 0 : 1] as { stdout: string }).stdout).toBe(stdout)
      for (const [option, spec] of Object.entries(command.options ?? {})) {
        expect(spec.help, `${name} --${option}`).toMatch(/^[A-Z].*\.$/)
        expect(spec.example, `${name} --${option}`).toMatch(new RegExp(`^wsreg .*--${option}\\b`))
        expect(stdout).toContain(`${flag(option, spec)}  `)
        expect(stdout).toContain(spec.help)
        expect(stdout).toContain(`e.g. ${spec.example}`)
      }
    }
    for (const spec of Object.values(GLOBAL_OPTIONS)) expect(spec.help).toMatch(/^[A-Z].*\.$/)
  })

  it('a command given without -- is named as such, with the line that was meant (exit 2)', async () => {
    const [run, lock, withOptions] = await Promise.all([
      runCli(['run', 'npm', 'run', 'dev']),
      runCli(['lock', '.', 'make', '-j4']),
      runCli(['--dir', '/tmp/nowhere', 'run', '--name', 'api', 'node', 'server.js', '--port', '3']),
    ])
    expect([run.code, lock.code, withOptions.code]).toEqual([2, 2, 2])
    expect(run.stderr).toBe('wsreg: put -- before the command: wsreg run -- npm run dev\n')
    expect(lock.stderr).toBe('wsreg: put -- before the command: wsreg lock . -- make -j4\n')
    expect(withOptions.stderr).toBe('wsreg: put -- before the command: wsreg run --dir /tmp/nowhere --name api -- node server.js --port 3\n')
  })

  it("unknown options and missing values are reworded (never Node's parseArgs text); usage goes to stderr", async () => {
    const [unknown, missing, bare, interval] = await Promise.all([runCli(['ls', '--bogus']), runCli(['run', '--name']), runCli([]), runCli(['ls', '--interval', '500'])])
    expect(unknown).toMatchObject({ code: 2, stdout: '' })
    expect(unknown.stderr).toMatch(/^wsreg: wsreg ls has no option --bogus\. Run `wsreg ls --help` for its options\.\nUsage: wsreg ls /)
    expect(unknown.stderr).not.toMatch(/To specify a positional|-- "--bogus"/)
    expect(missing).toMatchObject({ code: 2, stdout: '' })
    expect(missing.stderr).toMatch(/^wsreg: --name needs a value\./)
    expect(bare).toMatchObject({ code: 2, stdout: '' })
    expect(bare.stderr).toMatch(/^Usage: wsreg /)
    expect(interval).toMatchObject({ code: 2, stdout: '', stderr: 'wsreg: --interval applies to --watch: wsreg ls --watch --interval MS.\n' })
  })
})
