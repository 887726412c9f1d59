import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { ROOT } from './helpers.js'

describe('npm pack', () => {
  it('ships the built library, CLI, schema and docs — and no tests, sources or fixtures', () => {
    const result = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' })
    expect(result.status).toBe(0)
    const files: string[] = JSON.parse(result.stdout)[0].files.map((file: { path: string }) => file.path)
    for (const needed of ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'schema/entry.v1.json', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js']) {
      expect(files).toContain(needed)
    }
    const unwanted = files.filter((file) => /^(src|test|fixtures|bench|demo|docs|\.ci|node_modules)\//.test(file) || file.endsWith('.map'))
    expect(unwanted).toEqual([])
  })
})
