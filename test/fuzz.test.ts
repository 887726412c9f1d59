import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_ENTRY_BYTES, MAX_ENTRY_DEPTH, nestingExceeds, serializeEntry, type Entry } from '../src/entry.js'
import { captureIdentity } from '../src/identity.js'
import { idOfCanonical, workspaceId } from '../src/paths.js'
import { Registry, type CorruptRow, type EntryRow } from '../src/registry.js'
import { runCli } from './helpers.js'

// Every entry file below is written to a real registry folder and read back through the public API:
// list, listInfo, read, prune (dry run and real). Nothing may throw, a malformed file must come out as
// `corrupt` everywhere (and be quarantined byte for byte, never deleted), and a valid one as the entry.

let dir: string
let ws: string
let registry: Registry
let base: Entry
const RUNS = { numRuns: 40 }

let root: string
// One folder for the whole file (the helpers' temp folders last one test); each probe empties it again.
beforeAll(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'wsreg-fuzz-')))
  chmodSync(root, 0o755)
  dir = join(root, 'reg')
  ws = join(root, 'ws')
  mkdirSync(ws)
  mkdirSync(dir, { mode: 0o700 })
  registry = new Registry({ dir })
  const identity = captureIdentity(process.pid)
  // An entry of this (alive) process: valid files are never pruned, so each probe leaves the folder as it found it.
  base = {
    version: 1,
    id: workspaceId(ws),
    cwd: ws,
    name: 'ws',
    pid: process.pid,
    pidStartTime: identity.pidStartTime,
    bootId: identity.bootId,
    host: identity.host,
    pidNamespace: identity.pidNamespace,
    startedAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:01.000Z',
  }
})

afterAll(() => rmSync(root, { recursive: true, force: true }))

type Verdict = { kind: 'valid'; entry: Entry } | { kind: 'corrupt'; problem: string }

/**
 * Write `bytes` as the entry file of `id` (canonical, or legacy `<id>-<pid>.json`), run every reader
 * over it, check they agree, and leave the folder empty again.
 */
async function probe(bytes: Uint8Array | string, options: { id?: string; legacyPid?: number } = {}): Promise<Verdict> {
  const id = options.id ?? base.id
  const file = options.legacyPid === undefined ? `${id}.json` : `${id}-${options.legacyPid}.json`
  const path = join(dir, file)
  const data = typeof bytes === 'string' ? Buffer.from(bytes) : Buffer.from(bytes)
  writeFileSync(path, data, { mode: 0o600 })
  try {
    const listed = await registry.list({ prune: false })
    const infos = await registry.listInfo({ all: true, prune: false })
    const dry = await registry.prune({ dryRun: true })
    expect(readdirSync(dir)).toEqual([file]) // read-only calls changed nothing
    // The CLI's --json output and a rewrite both stringify what was read: that must not overflow either.
    JSON.stringify(infos)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    const corrupt = infos.find((row): row is CorruptRow => row.status === 'corrupt')
    if (corrupt) {
      expect(listed).toEqual([])
      expect(infos).toHaveLength(1)
      expect(dry).toMatchObject([{ reason: 'corrupt', path }])
      expect(await registry.readId(id)).toBeUndefined()
      const report = await registry.prune()
      const moved = report[0]?.quarantinedTo
      expect(moved).toBeTruthy()
      expect(readFileSync(moved as string).equals(data)).toBe(true) // quarantined, never deleted or altered
      expect(existsSync(path)).toBe(false)
      return { kind: 'corrupt', problem: corrupt.problem }
    }
    expect(infos).toHaveLength(1)
    const row = infos[0] as EntryRow
    // Valid but judged dead (a changed pid, start time or boot id): left out of list, shown by listInfo({ all }).
    const prunable = row.status === 'dead' || row.status === 'gone'
    expect(listed).toHaveLength(prunable ? 0 : 1)
    expect(dry.map((item) => item.reason)).toEqual(prunable ? [row.reason] : options.legacyPid === undefined ? [] : ['legacy-migrated'])
    const { status: _status, reason: _reason, path: rowPath, mtime: _mtime, ...entry } = row
    expect(rowPath).toBe(path)
    expect(Object.getPrototypeOf(row)).toBe(Object.prototype)
    expect(entry.id).toBe(id)
    expect(idOfCanonical(entry.cwd)).toBe(id)
    const read = await registry.readId(id)
    if (prunable) expect(read).toBeUndefined()
    else expect(read?.cwd).toBe(entry.cwd)
    await registry.prune()
    return { kind: 'valid', entry: entry as Entry }
  } finally {
    for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true })
  }
}

function text(entry: Record<string, unknown>): string {
  return serializeEntry(entry as unknown as Entry)
}

/** `base` with one field replaced, built as text so keys such as `__proto__` stay plain data. */
function withField(field: string, rawJson: string): string {
  const rest = Object.entries(base)
    .filter(([key]) => key !== field)
    .map(([key, value]) => `${JSON.stringify(key)}: ${JSON.stringify(value)}`)
  return `{${[...rest, `${JSON.stringify(field)}: ${rawJson}`].join(', ')}}\n`
}

async function expectCorrupt(bytes: Uint8Array | string, options?: { id?: string; legacyPid?: number }): Promise<string> {
  const verdict = await probe(bytes, options)
  expect(verdict.kind).toBe('corrupt')
  return verdict.kind === 'corrupt' ? verdict.problem : ''
}

describe('the baseline', () => {
  it('a well-formed entry is read back, and rewritten to the same bytes', async () => {
    const verdict = await probe(text({ ...base }))
    expect(verdict.kind).toBe('valid')
    if (verdict.kind === 'valid') expect(serializeEntry(verdict.entry)).toBe(text({ ...base }))
  })
})

describe('random bytes', () => {
  it('are corrupt under a canonical or a legacy name', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), fc.option(fc.integer({ min: 0, max: 2 ** 31 - 1 })), async (bytes, legacyPid) => {
        await expectCorrupt(bytes, { legacyPid: legacyPid ?? undefined })
      }),
      RUNS,
    )
  })

  it('spliced into a valid entry make it corrupt or leave a valid entry of the same workspace', async () => {
    const good = Buffer.from(text({ ...base }))
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: good.length }), fc.uint8Array({ minLength: 1, maxLength: 8 }), async (at, noise) => {
        const verdict = await probe(Buffer.concat([good.subarray(0, at), noise, good.subarray(at)]))
        // Noise inside a free-text field (name, host…) can be legitimate; it never moves the entry to another workspace.
        if (verdict.kind === 'valid') expect(verdict.entry.cwd).toBe(ws)
      }),
      RUNS,
    )
  })
})

describe('truncated JSON', () => {
  it('every prefix that cuts off the closing brace is corrupt (a torn write is never read)', async () => {
    const good = Buffer.from(text({ ...base, name: 'naïve ☃ 🚀 workspace', meta: { a: [1, 2, { b: 'c' }] } }))
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: good.length - 2 }), async (length) => {
        await expectCorrupt(good.subarray(0, length))
      }),
      RUNS,
    )
  })

  it('an empty file is corrupt', async () => {
    expect(await expectCorrupt('')).toMatch(/bad JSON/)
  })
})

describe('deep nesting', () => {
  const nested = (depth: number, open = '[', close = ']') => `${open.repeat(depth)}${close.repeat(depth)}`

  it('nesting inside meta is valid up to the limit and corrupt beyond it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3 * MAX_ENTRY_DEPTH }), fc.boolean(), async (depth, objects) => {
        const meta = objects ? `${'{"k":'.repeat(depth)}1${'}'.repeat(depth)}` : nested(depth)
        const verdict = await probe(withField('meta', `{"deep": ${meta}}`))
        // The entry is level 1 and meta level 2, so the file nests depth + 2 levels.
        expect(verdict.kind).toBe(depth + 2 <= MAX_ENTRY_DEPTH ? 'valid' : 'corrupt')
      }),
      { numRuns: 30 },
    )
  })

  it('half a million levels come back as a clean corrupt row, without a stack overflow', async () => {
    const half = MAX_ENTRY_BYTES / 2 - 1000
    expect(await expectCorrupt(nested(half))).toMatch(/deeper than/)
    expect(await expectCorrupt(withField('futureField', nested(half)))).toMatch(/deeper than/)
    expect(await expectCorrupt('['.repeat(MAX_ENTRY_BYTES))).toMatch(/deeper than/)
  })

  it('the depth check stops at the first bracket past the limit, whatever the input length (bounded work)', () => {
    for (const n of [MAX_ENTRY_DEPTH + 1, 10_000, 1_000_000]) expect(nestingExceeds('['.repeat(n), MAX_ENTRY_DEPTH)).toBe(MAX_ENTRY_DEPTH)
    // Brackets inside strings (and escaped quotes) do not count.
    expect(nestingExceeds(`["${'['.repeat(1000)}\\"${'{'.repeat(1000)}"]`, MAX_ENTRY_DEPTH)).toBe(-1)
    // An even run of backslashes does not escape the quote: the brackets after it count.
    const text = String.raw`["a\\", [[1]]]`
    expect(nestingExceeds(text, 2)).toBe(text.indexOf('[[') + 1)
  })
})

describe('huge strings', () => {
  const limits: Array<[keyof Entry, number]> = [
    ['name', 4096],
    ['url', 4096],
    ['host', 1024],
    ['pidStartTime', 64],
    ['bootId', 256],
    ['pidNamespace', 256],
  ]

  it('a field is valid up to its length limit and corrupt beyond it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...limits), fc.integer({ min: -3, max: 3 }), async ([field, limit], delta) => {
        const verdict = await probe(withField(field, JSON.stringify('7'.repeat(limit + delta))))
        if (delta > 0) expect(verdict.kind).toBe('corrupt')
        // Within the limit the shape is valid; the identity fields may then judge the entry (e.g. unknown host), never break it.
        else expect(verdict.kind).toBe('valid')
      }),
      RUNS,
    )
  })

  it('a cwd longer than any real path is a valid entry of a missing workspace, not an exception', async () => {
    for (const length of [300, 4095]) {
      const cwd = `/${'a'.repeat(length - 1)}`
      const verdict = await probe(text({ ...base, id: idOfCanonical(cwd), cwd, name: 'long' }), { id: idOfCanonical(cwd) })
      expect(verdict.kind).toBe('valid')
    }
    const cwd = `/${'a'.repeat(4096)}`
    expect(await expectCorrupt(text({ ...base, id: idOfCanonical(cwd), cwd }), { id: idOfCanonical(cwd) })).toMatch(/cwd/)
  })

  it('a cwd below a regular file (ENOTDIR) is an orphan, not an exception', async () => {
    const cwd = join(ws, '..', 'reg-file', 'below')
    writeFileSync(join(ws, '..', 'reg-file'), '')
    const verdict = await probe(text({ ...base, id: idOfCanonical(cwd), cwd }), { id: idOfCanonical(cwd) })
    expect(verdict).toMatchObject({ kind: 'valid', entry: { cwd } })
  })

  it('a 900 kB meta string is read; a file past 1 MiB is corrupt without being parsed', async () => {
    expect((await probe(text({ ...base, meta: { blob: 'x'.repeat(900_000) } }))).kind).toBe('valid')
    expect(await expectCorrupt(text({ ...base, meta: { blob: 'x'.repeat(MAX_ENTRY_BYTES) } }))).toMatch(/larger than/)
  })
})

describe('wrong types', () => {
  const isTime = (value: unknown) =>
    typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/.test(value) && !Number.isNaN(Date.parse(value))
  const valueOf = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.string(), fc.constantFrom(null, true, false, 0, -1, 1.5, '', [], {}))
  // For each field, which replacement values still make a valid entry; everything else must be corrupt.
  const accepts: Record<string, (value: unknown) => boolean> = {
    version: (v) => Number.isSafeInteger(v) && (v as number) >= 1,
    id: (v) => v === base.id,
    cwd: (v) => v === base.cwd,
    name: (v) => typeof v === 'string' && v.length <= 4096,
    pid: (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 2 ** 31 - 1,
    pidStartTime: (v) => v === null || (typeof v === 'string' && v.length <= 64),
    bootId: (v) => v === null || (typeof v === 'string' && v.length <= 256),
    pidNamespace: (v) => v === null || (typeof v === 'string' && v.length <= 256),
    host: (v) => typeof v === 'string' && v.length <= 1024,
    url: (v) => typeof v === 'string' && v.length <= 4096,
    startedAt: isTime,
    updatedAt: isTime,
    meta: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  }

  it('any JSON value in any known field is accepted exactly when the field allows it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...Object.keys(accepts)), valueOf, async (field, value) => {
        const verdict = await probe(withField(field, JSON.stringify(value)))
        expect(verdict.kind).toBe((accepts[field] as (v: unknown) => boolean)(value) ? 'valid' : 'corrupt')
      }),
      { numRuns: 150 },
    )
  })

  it('a missing required field is corrupt', async () => {
    for (const field of ['version', 'id', 'cwd', 'pid', 'host', 'startedAt', 'updatedAt']) {
      const { [field]: _dropped, ...rest } = base as unknown as Record<string, unknown>
      expect(await expectCorrupt(text(rest)), field).toBeTruthy()
    }
  })

  it('a top-level array, string, number or null is corrupt', async () => {
    for (const value of ['[]', '"entry"', '42', 'null', 'true', `[${JSON.stringify(base)}]`]) expect(await expectCorrupt(value)).toMatch(/not a JSON object/)
  })

  it('impossible calendar times (month 13, hour 99) are corrupt', async () => {
    expect(await expectCorrupt(withField('startedAt', '"2026-13-01T00:00:00Z"'))).toMatch(/startedAt/)
    expect(await expectCorrupt(withField('updatedAt', '"2026-01-01T99:00:00Z"'))).toMatch(/updatedAt/)
  })
})

describe('prototype-pollution keys', () => {
  const keys = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', 'then']
  const payloads = ['{"polluted": true}', '{"prototype": {"polluted": true}}', `{"pid": 1, "cwd": "/elsewhere"}`, 'null', '1']

  it('at top level or inside meta, they stay inert data and never change what the entry says', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...keys), fc.constantFrom(...payloads), fc.boolean(), async (key, payload, inMeta) => {
        const raw = inMeta ? withField('meta', `{${JSON.stringify(key)}: ${payload}}`) : withField(key, payload)
        const verdict = await probe(raw)
        expect(verdict.kind).toBe('valid')
        if (verdict.kind !== 'valid') return
        expect(verdict.entry.pid).toBe(process.pid)
        expect(verdict.entry.cwd).toBe(ws)
        // The key survives a rewrite as data.
        expect(JSON.parse(serializeEntry(verdict.entry))).toEqual(JSON.parse(raw))
        expect(({} as Record<string, unknown>).polluted).toBeUndefined()
      }),
      RUNS,
    )
  })

  it('fields that exist only under __proto__ do not count: the file is corrupt', async () => {
    const { pid: _pid, cwd: _cwd, ...rest } = base
    const inner = JSON.stringify({ pid: base.pid, cwd: base.cwd })
    expect(await expectCorrupt(`${JSON.stringify(rest).slice(0, -1)}, "__proto__": ${inner}}`)).toMatch(/cwd/)
  })

  it('a registry.write over a file with a __proto__ field keeps it as data and pollutes nothing', async () => {
    writeFileSync(join(dir, `${base.id}.json`), withField('__proto__', '{"polluted": true}'), { mode: 0o600 })
    try {
      await registry.write({ cwd: ws, meta: JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown> })
      const saved = JSON.parse(readFileSync(join(dir, `${base.id}.json`), 'utf8'))
      expect(Object.keys(saved)).toContain('__proto__')
      expect(Object.keys(saved.meta)).toEqual(['__proto__'])
      expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    } finally {
      for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true })
    }
  })
})

describe('numbers out of range', () => {
  const badPids = ['9007199254740992', '9007199254740993', '2147483648', '-1', '-2147483648', '1.5', '1e400', '-1e400', '"NaN"', '"123"', '"0x10"', 'NaN', 'Infinity', '0x10', '1_000']

  it('pids past 2^31-1, negative, fractional, infinite or quoted are corrupt (named cases)', async () => {
    for (const pid of badPids) expect(await expectCorrupt(withField('pid', pid)), pid).toBeTruthy()
  })

  it('any number outside 0..2^31-1 or not an integer is corrupt as pid or version (generated)', async () => {
    const outOfRange = fc.oneof(
      fc.integer({ min: 2 ** 31, max: Number.MAX_SAFE_INTEGER }),
      fc.integer({ min: Number.MIN_SAFE_INTEGER, max: -1 }),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Number.isInteger(n)),
      fc.bigInt({ min: 2n ** 53n, max: 2n ** 80n }),
    )
    await fc.assert(
      fc.asyncProperty(outOfRange, fc.constantFrom('pid', 'version'), async (n, field) => {
        if (field === 'version' && typeof n === 'number' && Number.isInteger(n) && n > 0) return // large versions are newer schemas
        await expectCorrupt(withField(field, String(n)))
      }),
      RUNS,
    )
  })

  it('version 0, negative or past 2^53 is corrupt', async () => {
    for (const version of ['0', '-1', '9007199254740993', '1e400', '"1"', 'null']) expect(await expectCorrupt(withField('version', version)), version).toBeTruthy()
  })
})

describe('non-UTF-8 bytes', () => {
  const invalid = [[0xff], [0xfe, 0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80]]

  it('invalid sequences anywhere in a string make the file corrupt (never silently replaced by U+FFFD)', async () => {
    const good = text({ ...base, name: 'NAME' })
    const [before, after] = good.split('NAME') as [string, string]
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...invalid), fc.string({ maxLength: 4 }), async (sequence, around) => {
        const bytes = Buffer.concat([Buffer.from(before + around), Buffer.from(sequence), Buffer.from(around + after)])
        expect(await expectCorrupt(bytes)).toMatch(/not UTF-8/)
      }),
      RUNS,
    )
  })

  it('UTF-16 text is corrupt', async () => {
    await expectCorrupt(Buffer.from(`\ufeff${text({ ...base })}`, 'utf16le'))
  })

  it('any valid unicode name, including astral characters and escapes of lone surrogates, round-trips', async () => {
    // Code points over the whole range, lone surrogates included (fc's 'binary' unit is slow to generate).
    const codePoints = fc.array(fc.integer({ min: 0, max: 0x10ffff }), { maxLength: 40 }).map((points) => String.fromCodePoint(...points))
    await fc.assert(
      fc.asyncProperty(codePoints, async (name) => {
        const verdict = await probe(text({ ...base, name }))
        expect(verdict).toMatchObject({ kind: 'valid', entry: { name } })
      }),
      RUNS,
    )
  })
})

describe('byte order mark and line endings', () => {
  it('a UTF-8 byte order mark is ignored (RFC 8259 allows it): the same entry', async () => {
    const verdict = await probe(`\ufeff${text({ ...base })}`)
    expect(verdict).toMatchObject({ kind: 'valid', entry: base })
  })

  it('two byte order marks, or one inside the JSON, are corrupt', async () => {
    await expectCorrupt(`\ufeff\ufeff${text({ ...base })}`)
    await expectCorrupt(`{\ufeff${text({ ...base }).slice(1)}`)
  })

  it('CRLF line endings, tabs and any JSON whitespace between tokens read as the same entry', async () => {
    const whitespace = fc.array(fc.constantFrom(' ', '\t', '\r\n', '\n', '\r'), { maxLength: 3 }).map((parts) => parts.join(''))
    await fc.assert(
      fc.asyncProperty(whitespace, fc.integer({ min: 0, max: 8 }), async (gap, indent) => {
        const raw = JSON.stringify(base, null, indent).replace(/\n/g, `${gap}\r\n`).replace(/,/g, `,${gap}`)
        expect(await probe(raw)).toMatchObject({ kind: 'valid', entry: base })
      }),
      RUNS,
    )
  })
})

describe('valid entries of every shape', () => {
  it('round-trip through the folder byte for byte (never mistaken for corrupt, never altered)', async () => {
    const entry = fc.record({
      name: fc.string({ maxLength: 30 }),
      url: fc.option(fc.webUrl(), { nil: undefined }),
      meta: fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 4 })), { nil: undefined }),
      extra: fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }).filter((key) => !(key in base) && key !== 'url' && key !== 'meta'), fc.jsonValue({ maxDepth: 2 })),
    })
    await fc.assert(
      fc.asyncProperty(entry, async ({ name, url, meta, extra }) => {
        const { startedAt, updatedAt, ...head } = base
        // Built in the order the registry writes fields, unknown ones last.
        const value: Record<string, unknown> = { ...head, name }
        if (url !== undefined) value.url = url
        Object.assign(value, { startedAt, updatedAt })
        if (meta !== undefined) value.meta = meta
        for (const [key, field] of Object.entries(extra)) Object.defineProperty(value, key, { value: field, enumerable: true, writable: true, configurable: true })
        // -0 is written as 0: compare the re-serialized text, which is what a rewrite produces.
        const raw = JSON.stringify(JSON.parse(text(value)), null, 2) + '\n'
        const verdict = await probe(raw)
        expect(verdict.kind).toBe('valid')
        if (verdict.kind === 'valid') expect(serializeEntry(verdict.entry)).toBe(raw)
      }),
      RUNS,
    )
  })
})

describe('write refuses what read would call corrupt', () => {
  it('meta nested too deeply, too large, cyclic or with a BigInt is E_INVALID, and nothing is written', async () => {
    let deep: Record<string, unknown> = {}
    for (let i = 0; i < MAX_ENTRY_DEPTH; i++) deep = { deep }
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    for (const meta of [deep, { blob: 'x'.repeat(MAX_ENTRY_BYTES) }, cyclic, { n: 1n }]) {
      await expect(registry.write({ cwd: ws, meta })).rejects.toMatchObject({ code: 'E_INVALID' })
    }
    expect(readdirSync(dir)).toEqual([])
  })
})

describe('the CLI over a folder holding every class of malformed file', () => {
  it('ls --all, ls --all --json and doctor --json print every file and exit normally', async () => {
    const samples: Array<string | Buffer> = [
      Buffer.from([0xde, 0xad, 0xbe, 0xef]),
      text({ ...base }).slice(0, 40),
      `{"meta": ${'['.repeat(100_000)}`,
      withField('name', JSON.stringify('n'.repeat(5000))),
      withField('pid', '"12"'),
      withField('__proto__', '{"polluted": true}'),
      withField('pid', '9007199254740992'),
      Buffer.from([...Buffer.from(text({ ...base }).slice(0, 30)), 0xff, 0xfe]),
      `\ufeff\ufeff${text({ ...base })}`,
    ]
    const ids = samples.map((_, index) => `b${index.toString(16).padStart(15, '0')}`)
    samples.forEach((sample, index) => writeFileSync(join(dir, `${ids[index]}.json`), sample, { mode: 0o600 }))
    writeFileSync(join(dir, `${base.id}.json`), text({ ...base }).replace(/\n/g, '\r\n'), { mode: 0o600 })
    try {
      const table = await runCli(['ls', '--all', '--no-prune', '--dir', dir])
      expect(table.code).toBe(0)
      expect(table.stdout.match(/corrupt/g)).toHaveLength(samples.length)
      const json = await runCli(['ls', '--all', '--no-prune', '--json', '--dir', dir])
      const rows = JSON.parse(json.stdout) as Array<{ status: string }>
      expect(rows.filter((row) => row.status === 'corrupt')).toHaveLength(samples.length)
      expect(rows.filter((row) => row.status === 'alive')).toHaveLength(1) // the CRLF copy of a good entry
      const doctor = await runCli(['doctor', '--json', '--dir', dir])
      expect(doctor.code).toBe(1)
      expect(JSON.parse(doctor.stdout).findings.filter((finding: { kind: string }) => finding.kind === 'corrupt')).toHaveLength(samples.length)
    } finally {
      for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true })
    }
  })
})
