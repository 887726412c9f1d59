import { describe, expect, it } from 'vitest'
import { parseEntry, serializeEntry, type Entry } from '../src/entry.js'
import { workspaceId } from '../src/paths.js'

const cwd = '/Users/dan/projects/foo'
const id = workspaceId(cwd)
const valid = {
  version: 1,
  id,
  cwd,
  name: 'foo',
  pid: 42,
  pidStartTime: '123',
  bootId: 'b',
  host: 'h',
  startedAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:01.000Z',
}

function parse(value: unknown, options = {}) {
  return parseEntry(JSON.stringify(value), id, options)
}

describe('parseEntry', () => {
  it('accepts a complete version-1 entry', () => {
    const result = parse(valid)
    expect(result).toEqual({ ok: true, entry: valid })
  })

  it('preserves unknown fields and meta verbatim, in order, after the known ones', () => {
    const text0 = JSON.stringify({ futureField: { a: [1] }, ...valid, meta: { x: 1 } }).replace('"x":1', '"x":1,"__proto__":"kept"')
    const result = parseEntry(text0, id)
    expect(result.ok).toBe(true)
    if (!result.ok) return
    const text = serializeEntry(result.entry)
    expect(JSON.parse(text).futureField).toEqual({ a: [1] })
    expect(Object.keys(JSON.parse(text)).at(-1)).toBe('futureField')
    expect(text).toContain('"__proto__": "kept"')
  })

  it('gives the same entry, key for key and in order, whether the file lists its keys in entry order or not', () => {
    // In entry order the parsed object is kept as the entry; any other order is built afresh: both must read the same.
    const { startedAt, updatedAt, ...identity } = valid
    const full: Record<string, unknown> = {
      ...identity, pidNamespace: '4026531836', timeNamespace: null, url: 'http://127.0.0.1:3000', startedAt, updatedAt, meta: { a: 1 }, leaseUntil: '2026-01-01T00:01:00.000Z',
    }
    const keys = Object.keys(full)
    const canonical = parse(full)
    expect(canonical.ok && Object.keys(canonical.entry)).toEqual(keys)
    const orders = [
      [...keys].reverse(),
      [...keys.slice(1), keys[0]],
      ...keys.slice(0, -1).map((_, i) => [...keys.slice(0, i), keys[i + 1], keys[i], ...keys.slice(i + 2)]),
    ]
    for (const order of orders) {
      const text = JSON.stringify(Object.fromEntries(order.map((key) => [key as string, full[key as string]])))
      expect(JSON.stringify(parseEntry(text, id)), order.join(',')).toBe(JSON.stringify(canonical))
    }
    // Keys left to their defaults, or one more than an entry has, make a fresh entry too.
    const { name: _name, ...unnamed } = full
    expect(parse(unnamed)).toMatchObject({ ok: true, entry: { name: 'foo' } })
    const extra = parse({ ...full, later: 1 })
    expect(extra.ok && Object.keys(extra.entry)).toEqual([...keys, 'later'])
  })

  it('keeps prototype-pollution keys as plain data', () => {
    const result = parseEntry(`{"__proto__": {"polluted": true}, ${JSON.stringify(valid).slice(1)}`, id)
    expect(result.ok).toBe(true)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    if (result.ok) expect(Object.getPrototypeOf(result.entry)).toBe(Object.prototype)
  })

  it.each([
    ['bad JSON', '{"version":', /bad JSON/],
    ['an array', '[]', /not a JSON object/],
    ['a negative pid', JSON.stringify({ ...valid, pid: -1 }), /pid/],
    ['a pid of 2^53', JSON.stringify({ ...valid, pid: 2 ** 53 }), /pid/],
    ['a pid as a string', JSON.stringify({ ...valid, pid: '42' }), /pid/],
    ['a relative cwd', JSON.stringify({ ...valid, cwd: 'foo' }), /cwd/],
    ['a cwd of another id', JSON.stringify({ ...valid, cwd: '/other' }), /hashes to/],
    ['a wrong id field', JSON.stringify({ ...valid, id: '0000000000000000' }), /id does not match/],
    ['a local-time startedAt', JSON.stringify({ ...valid, startedAt: '2026-01-01 00:00' }), /startedAt/],
    ['meta that is not an object', JSON.stringify({ ...valid, meta: [1] }), /meta/],
    ['a missing version', JSON.stringify({ ...valid, version: undefined }), /version/],
    ['a numeric pidStartTime', JSON.stringify({ ...valid, pidStartTime: 5 }), /pidStartTime/],
  ])('rejects %s', (_, text, problem) => {
    const result = parseEntry(text, id)
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.problem).toMatch(problem)
  })

  it('accepts a legacy entry without version, id and identity fields, filling defaults', () => {
    const result = parse({ cwd, pid: 7, startedAt: valid.startedAt }, { legacy: true, localHost: 'here' })
    expect(result).toEqual({
      ok: true,
      entry: { version: 1, id, cwd, name: 'foo', pid: 7, pidStartTime: null, bootId: null, host: 'here', startedAt: valid.startedAt, updatedAt: valid.startedAt },
    })
  })

  it('keeps a newer schema version so a rewrite does not downgrade it', () => {
    const result = parse({ ...valid, version: 2 })
    expect(result.ok && result.entry.version).toBe(2)
  })
})

describe('serializeEntry', () => {
  it('writes 2-space JSON with a trailing newline', () => {
    const text = serializeEntry(valid as Entry)
    expect(text).toBe(`${JSON.stringify(valid, null, 2)}\n`)
    expect(text.split('\n')[1]).toBe('  "version": 1,')
  })
})
