// Lists read entry files without `fstat` (readEntryQuick): the files that check used to refuse must be refused the
// same, with the same problem, and none of them may hang a list or be read as an entry.
import { execFileSync, spawnSync } from 'node:child_process'
import { closeSync, constants, mkdirSync, openSync, readFileSync, readSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { MAX_ENTRY_BYTES, serializeEntry, type Entry } from '../src/entry.js'
import { workspaceId } from '../src/paths.js'
import { Registry } from '../src/registry.js'
import { readEntryQuick, readEntryView, type QuickRead } from '../src/store.js'
import { sandbox, tempDir } from './helpers.js'

const name = '0123456789abcdef.json'

/** An entry of a live workspace (this process) at `cwd`, as its file holds it; `meta` pads it to a size. */
function entryOf(cwd: string, template: Entry, meta?: Record<string, unknown>): Entry {
  return { ...template, id: workspaceId(cwd), cwd, name: cwd.slice(-6), ...(meta ? { meta } : {}) }
}

describe('readEntryQuick', () => {
  it('reads an ordinary file in one read, without its mtime', () => {
    const dir = tempDir()
    writeFileSync(join(dir, name), '{"a":1}')
    const read = readEntryQuick(join(dir, name))
    expect(read.kind === 'ok' && [read.bytes.toString(), read.mtimeMs]).toEqual(['{"a":1}', null])
  })

  it("gives a folder, a FIFO, an empty, a large and an oversized file readEntryView's verdicts, without hanging", () => {
    const dir = tempDir()
    mkdirSync(join(dir, 'folder.json'))
    execFileSync('mkfifo', [join(dir, 'fifo.json')])
    writeFileSync(join(dir, 'empty.json'), '')
    writeFileSync(join(dir, 'large.json'), Buffer.alloc(200 * 1024, 32)) // fills the 64 KiB buffer: read again whole
    writeFileSync(join(dir, 'exact.json'), Buffer.alloc(64 * 1024, 32)) // fills it exactly
    writeFileSync(join(dir, 'over.json'), Buffer.alloc(MAX_ENTRY_BYTES + 1, 32))
    symlinkSync(join(dir, 'empty.json'), join(dir, 'link.json'))
    for (const file of ['folder.json', 'fifo.json', 'empty.json', 'large.json', 'exact.json', 'over.json', 'link.json', 'none.json']) {
      const path = join(dir, file)
      // Bytes as text: comparing 200 KiB Buffers element by element takes seconds.
      const seen = (read: QuickRead) => (read.kind === 'ok' ? { ...read, bytes: read.bytes.toString('base64') } : read)
      expect(seen(readEntryQuick(path)), file).toEqual(seen(readEntryView(path)))
    }
    expect(readEntryQuick(join(dir, 'fifo.json'))).toMatchObject({ kind: 'corrupt', problem: 'is not a regular file' })
    expect(readEntryQuick(join(dir, 'over.json'))).toMatchObject({ kind: 'corrupt', problem: /larger than/ })
  })
})

describe('list and prune on a hostile folder', () => {
  it('refuse exactly what listInfo (which reads with fstat) refuses, and never read a FIFO with a writer as an entry', { timeout: 20_000 }, async () => {
    const { root, dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const first = await registry.write({ cwd: ws })
    // Valid entries: a plain one, one past the 64 KiB read buffer, one without a start identity (judged with its mtime).
    const cwds = ['big', 'noid'].map((folder) => join(root, folder))
    for (const cwd of cwds) mkdirSync(cwd)
    const big = entryOf(cwds[0] as string, first, { blob: 'x'.repeat(100 * 1024) })
    const noIdentity = { ...entryOf(cwds[1] as string, first), pidStartTime: null }
    for (const entry of [big, noIdentity]) writeFileSync(join(dir, `${entry.id}.json`), serializeEntry(entry), { mode: 0o600 })
    // Hostile files under entry names.
    const hostile = (cwd: string) => join(dir, `${workspaceId(join(root, cwd))}.json`)
    mkdirSync(hostile('folder'))
    symlinkSync(join(dir, `${first.id}.json`), hostile('link'))
    writeFileSync(hostile('empty'), '', { mode: 0o600 })
    writeFileSync(hostile('over'), Buffer.alloc(MAX_ENTRY_BYTES + 1, 32), { mode: 0o600 })
    writeFileSync(hostile('latin1'), Buffer.from([0x7b, 0xe9, 0x7d]), { mode: 0o600 })
    execFileSync('mkfifo', [hostile('idle-fifo')])
    // A FIFO whose writer (this process, read-write so opening never blocks) has a whole valid entry waiting in it.
    const fifo = hostile('fed-fifo')
    mkdirSync(join(root, 'fed-fifo'))
    execFileSync('mkfifo', [fifo])
    const writer = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK)
    const fed = serializeEntry(entryOf(join(root, 'fed-fifo'), first))
    try {
      writeSync(writer, fed)
      const info = await registry.listInfo({ all: true, prune: false })
      const listed = await registry.list({ prune: false })
      expect(listed.map((entry) => entry.cwd).sort()).toEqual([ws, ...cwds].sort())
      expect(listed).toEqual(info.filter((row) => row.status !== 'corrupt').map(({ status, reason, path, mtime, ...entry }) => entry))
      const problems = (rows: { path?: string; problem?: string }[]) => rows.filter((row) => row.problem).map((row) => `${row.path} ${row.problem}`).sort()
      const report = await registry.prune({ dryRun: true })
      expect(problems(report)).toEqual(problems(info))
      expect(problems(report)).toHaveLength(7)
      expect(problems(report)).toContain(`${fifo} is not a regular file`)
      // The list did not drain the FIFO: the writer's bytes are all still in it.
      const left = Buffer.alloc(fed.length + 1)
      expect(left.toString('utf8', 0, readSync(writer, left))).toBe(fed)
    } finally {
      closeSync(writer)
    }
    expect(readFileSync(join(dir, `${big.id}.json`), 'utf8')).toBe(serializeEntry(big))
  })

  it('a dead deleter\'s aside that is a FIFO with a writer is never read as the entry it stands in for', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const entry = await registry.write({ cwd: ws })
    const file = join(dir, `${entry.id}.json`)
    const bytes = readFileSync(file, 'utf8')
    rmSync(file)
    // The aside name of a compare-and-delete whose process (a real one, ended) died before putting the file back.
    const dead = spawnSync('true').pid as number
    await fedFifo(`${file}.cad-${dead}-tx-1-abcdef01`, bytes, async () => {
      expect(await registry.list({ prune: false })).toEqual([])
    })
  })

  it('read(cwd) never takes a FIFO with a writer at its entry name for the entry either', async () => {
    const { dir, ws } = sandbox()
    const registry = new Registry({ dir })
    const entry = await registry.write({ cwd: ws })
    const file = join(dir, `${entry.id}.json`)
    const bytes = readFileSync(file, 'utf8')
    rmSync(file)
    await fedFifo(file, bytes, async () => {
      expect(await registry.read(ws)).toBeUndefined()
    })
  })
})

/**
 * Make `path` a FIFO whose writer (this process, read-write so opening never blocks) has `bytes` waiting in it, run
 * `check`, then assert the FIFO was not drained: every byte is still there for its writer.
 */
async function fedFifo(path: string, bytes: string, check: () => Promise<void>): Promise<void> {
  execFileSync('mkfifo', [path])
  const writer = openSync(path, constants.O_RDWR | constants.O_NONBLOCK)
  try {
    writeSync(writer, bytes)
    await check()
    const left = Buffer.alloc(Buffer.byteLength(bytes) + 1)
    expect(left.toString('utf8', 0, readSync(writer, left))).toBe(bytes)
  } finally {
    closeSync(writer)
  }
}
