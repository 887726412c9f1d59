import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { reference } from '../src/cli/help.js'
import { ROOT } from './helpers.js'

describe('the README CLI reference', () => {
  it('equals what the option definitions behind --help generate (npm run readme:cli rewrites it)', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const section = /<!-- cli-reference:start[^\n]*-->\n\n([\s\S]*?)\n<!-- cli-reference:end -->/.exec(readme)?.[1]
    expect(section, 'README.md lacks the cli-reference markers').toBeDefined()
    expect(section).toBe(await reference())
  })
})
