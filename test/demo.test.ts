import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from './helpers.js'

describe('npm run demo', () => {
  it('tours start, SIGKILL, down event, self-prune, refused double start, orphan reap and cleanup', () => {
    const result = spawnSync(process.execPath, [join(ROOT, 'demo', 'tour.mjs')], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 })
    expect(result.stderr).toBe('')
    expect(result.status).toBe(0)
    const out = result.stdout
    for (const name of ['alpha', 'beta', 'gamma']) expect(out).toMatch(new RegExp(`↑ up +${name} \\(pid \\d+\\)`))
    expect(out).toMatch(/↓ down +beta \(exited\)/)
    expect(out).toMatch(/beta +dead/)
    expect(out).toContain('Files left in the registry: 2')
    expect(out).toMatch(/refused: alpha is already running \(pid \d+/)
    expect(out).toMatch(/gamma +orphan/)
    expect(out).toMatch(/terminated pid \d+ of gamma/)
    expect(out).toMatch(/↓ down +alpha \(removed\)/)
    expect(out).toContain('Cleaned up')
    const dir = /throwaway registry in (\S+)/.exec(out)?.[1]
    expect(dir).toBeDefined()
    expect(spawnSync('test', ['-e', dir as string]).status).toBe(1)
  })
})
