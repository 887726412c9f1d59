import { describe, expect, it } from 'vitest'
import { Registry } from '../src/index.js'
import { displayWidth, wantsColor } from '../src/cli/output.js'
import { runCli, sandbox } from './helpers.js'
import { join } from 'node:path'
import { mkdirSync } from 'node:fs'

describe('wsreg colour and column widths', () => {
  it("follows util.styleText's rules: TTY only by default, NO_COLOR off, FORCE_COLOR on (and it wins over NO_COLOR)", () => {
    const tty = { isTTY: true }
    const pipe = { isTTY: false }
    expect(wantsColor(tty, {})).toBe(true)
    expect(wantsColor(pipe, {})).toBe(false)
    expect(wantsColor(tty, { NO_COLOR: '1' })).toBe(false)
    expect(wantsColor(tty, { NO_COLOR: '' })).toBe(false)
    expect(wantsColor(tty, { TERM: 'dumb' })).toBe(false)
    expect(wantsColor(pipe, { FORCE_COLOR: '1' })).toBe(true)
    expect(wantsColor(pipe, { FORCE_COLOR: '' })).toBe(true)
    expect(wantsColor(pipe, { FORCE_COLOR: '1', NO_COLOR: '1' })).toBe(true)
    expect(wantsColor(tty, { FORCE_COLOR: '0' })).toBe(false)
  })

  it('FORCE_COLOR colours wsreg ls into a pipe even with NO_COLOR set; FORCE_COLOR=0 does not; wide names stay aligned', async () => {
    const { root, dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const wide = join(root, 'wide')
    mkdirSync(wide)
    await registry.register(ws, 'plain')
    await registry.register(wide, '日本語の名前🚀')
    const [forced, off] = await Promise.all([
      runCli(['--dir', dir, 'ls'], { env: { NO_COLOR: '1', FORCE_COLOR: '1' } }),
      runCli(['--dir', dir, 'ls'], { env: { NO_COLOR: undefined, FORCE_COLOR: '0' } }),
    ])
    expect(forced.stdout).toContain('\u001b[1mNAME\u001b[22m')
    expect(off.stdout).not.toContain('\u001b')
    // Each row's STATUS column starts at the same terminal column as the header's.
    const lines = off.stdout.trimEnd().split('\n')
    const columns = lines.map((line) => displayWidth(line.slice(0, line.search(/(STATUS|idle)/))))
    expect(new Set(columns).size).toBe(1)
    expect(displayWidth('日本語の名前🚀')).toBe(14)
    expect(displayWidth('e\u0301')).toBe(1)
  })
})
