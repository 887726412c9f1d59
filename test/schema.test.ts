import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { describe, expect, it } from 'vitest'
import { Registry } from '../src/registry.js'
import { ROOT, sandbox, sleeper } from './helpers.js'

const schema = JSON.parse(readFileSync(join(ROOT, 'schema', 'entry.v1.json'), 'utf8'))
const validate = new Ajv2020({ strict: true, allErrors: true }).compile(schema)

describe('schema/entry.v1.json', () => {
  it('validates every kind of file the library writes', async () => {
    const { root, dir, ws } = sandbox()
    const registry = new Registry({ dir })
    await registry.write({ cwd: ws, url: 'http://127.0.0.1:1', meta: { nested: { a: [1, null] } } })
    const { mkdirSync } = await import('node:fs')
    const idle = join(root, 'idle')
    mkdirSync(idle)
    await registry.register(idle, 'idle')
    const owned = join(root, 'owned')
    mkdirSync(owned)
    await registry.write({ cwd: owned, pid: sleeper().pid, name: 'by a child' })
    const files = readdirSync(dir)
    expect(files).toHaveLength(3)
    for (const file of files) {
      const entry = JSON.parse(readFileSync(join(dir, file), 'utf8'))
      expect(validate(entry), `${file}: ${JSON.stringify(validate.errors)}`).toBe(true)
      expect(`${entry.id}.json`).toBe(file)
    }
  })

  it('rejects what the library rejects', () => {
    expect(validate({ version: 1, cwd: '/x' })).toBe(false)
    expect(validate({ version: 1, id: 'XYZ', cwd: '/x', name: 'x', pid: -1, pidStartTime: null, bootId: null, host: 'h', startedAt: 'now', updatedAt: 'now' })).toBe(false)
  })
})
