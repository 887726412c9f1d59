import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from './helpers.js'

describe('npm run docs', () => {
  it('builds the API reference with every export, option and error code documented (warnings fail it)', () => {
    // typedoc.json sets treatWarningsAsErrors and notDocumented; --emit none checks without writing docs/api/.
    const result = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc'), '--emit', 'none'], { cwd: ROOT, encoding: 'utf8' })
    expect(result.stdout + result.stderr).not.toMatch(/warning|error/i)
    expect(result.status).toBe(0)
  }, 120_000)
})
