import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Registry } from '../src/registry.js'
import { CLI, ROOT, sandbox } from './helpers.js'

// The `wsreg` bin is a CommonJS bundle of the same CLI (faster start-up); it must behave like dist/cli/main.js.
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: { wsreg: string } }
const BIN = join(ROOT, pkg.bin.wsreg)

describe('the wsreg bin', () => {
  it('prints the package version', () => {
    expect(execFileSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' }).trim()).toBe(pkg.version)
  })

  it('lists the same JSON as the ESM entry', async () => {
    const { dir, ws } = sandbox()
    await new Registry({ dir }).write({ cwd: ws, name: 'demo' })
    const args = ['--dir', dir, 'ls', '--json']
    const fromBin = JSON.parse(execFileSync(process.execPath, [BIN, ...args], { encoding: 'utf8' })) as Array<{ name: string; status: string }>
    const fromMain = JSON.parse(execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8' })) as unknown
    expect(fromBin).toEqual(fromMain)
    expect(fromBin.map((row) => [row.name, row.status])).toEqual([['demo', 'alive']])
  })

  it('exits 2 with a message on a usage error', () => {
    const result = spawnSync(process.execPath, [BIN, 'no-such-command'], { encoding: 'utf8' })
    expect(result.status).toBe(2)
    expect(result.stderr).toContain('Unknown command')
  })
})
