import { existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { compareAndDelete, createExclusive, quarantine, readEntryFile, sweepTemp, writeAtomic } from '../src/store.js'
import { exited, fixture, stdoutOf, tempDir, waitFor } from './helpers.js'

const name = '0123456789abcdef.json'

describe('writeAtomic', () => {
  it('writes mode 0600 even under umask 000', () => {
    const dir = tempDir()
    const old = process.umask(0)
    try {
      writeAtomic(dir, name, 'x')
    } finally {
      process.umask(old)
    }
    expect(statSync(join(dir, name)).mode & 0o777).toBe(0o600)
    expect(readdirSync(dir)).toEqual([name])
  })

  it('never leaves a torn file when the writer is SIGKILLed mid-write', async () => {
    const root = tempDir()
    const dir = join(root, 'reg')
    const cwd = join(root, 'ws')
    mkdirSync(cwd)
    for (let round = 0; round < 5; round++) {
      const writer = fixture('writer.mjs', ['forever', dir, cwd])
      const out = stdoutOf(writer)
      await waitFor(() => out().includes('ready') && existsSync(dir) && readdirSync(dir).some((file) => file.endsWith('.json')))
      // Kill while writes of 200 kB entries are in flight.
      writer.kill('SIGKILL')
      await exited(writer)
      const entries = readdirSync(dir).filter((file) => /^[0-9a-f]{16}\.json$/.test(file))
      expect(entries).toHaveLength(1)
      const entry = JSON.parse(readFileSync(join(dir, entries[0] as string), 'utf8'))
      expect(entry.meta.blob).toHaveLength(200_000)
    }
  })
})

describe('createExclusive', () => {
  it('creates a missing file and refuses an existing one', () => {
    const dir = tempDir()
    expect(createExclusive(dir, name, 'first')).toBe(true)
    expect(createExclusive(dir, name, 'second')).toBe(false)
    expect(readFileSync(join(dir, name), 'utf8')).toBe('first')
    expect(readdirSync(dir)).toEqual([name])
  })
})

describe('compareAndDelete', () => {
  it('deletes the judged version', () => {
    const dir = tempDir()
    writeAtomic(dir, name, 'judged')
    expect(compareAndDelete(dir, name, Buffer.from('judged'))).toBe('deleted')
    expect(readdirSync(dir)).toEqual([])
  })

  it('puts a newer version back instead of deleting it', () => {
    const dir = tempDir()
    writeAtomic(dir, name, 'newer')
    expect(compareAndDelete(dir, name, Buffer.from('judged'))).toBe('changed')
    expect(readFileSync(join(dir, name), 'utf8')).toBe('newer')
    expect(readdirSync(dir)).toEqual([name])
  })

  it('reports a file that is already gone', () => {
    expect(compareAndDelete(tempDir(), name, Buffer.from('x'))).toBe('missing')
  })
})

describe('readEntryFile', () => {
  it('treats a symlink as corrupt and never follows it', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'target'), '{}')
    symlinkSync(join(dir, 'target'), join(dir, name))
    expect(readEntryFile(join(dir, name))).toMatchObject({ kind: 'corrupt', problem: 'is a symlink' })
  })

  it('treats a folder, a FIFO and a file over 1 MiB as corrupt without hanging', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, 'a.json'))
    expect(readEntryFile(join(dir, 'a.json'))).toMatchObject({ kind: 'corrupt' })
    writeFileSync(join(dir, 'b.json'), Buffer.alloc(1024 * 1024 + 1, 32))
    expect(readEntryFile(join(dir, 'b.json'))).toMatchObject({ kind: 'corrupt', problem: /larger/ })
    const { execFileSync } = await import('node:child_process')
    execFileSync('mkfifo', [join(dir, 'c.json')])
    expect(readEntryFile(join(dir, 'c.json'))).toMatchObject({ kind: 'corrupt', problem: 'is not a regular file' })
  })

  it('reads a hard-linked file like any other and reports missing files', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'x'), 'abc')
    linkSync(join(dir, 'x'), join(dir, name))
    const read = readEntryFile(join(dir, name))
    expect(read.kind === 'ok' && read.bytes.toString()).toBe('abc')
    expect(readEntryFile(join(dir, 'nope.json'))).toEqual({ kind: 'missing' })
  })
})

describe('sweepTemp and quarantine', () => {
  it('sweeps a temp file only once it is older than the limit', () => {
    const dir = tempDir()
    const temp = `${name}.tmp-1-1-abcd`
    writeFileSync(join(dir, temp), 'partial')
    expect(sweepTemp(dir, temp, Date.now(), 60_000, false)).toBe(false)
    const old = new Date(Date.now() - 61_000)
    utimesSync(join(dir, temp), old, old)
    expect(sweepTemp(dir, temp, Date.now(), 60_000, true)).toBe(true)
    expect(existsSync(join(dir, temp))).toBe(true) // dry run
    expect(sweepTemp(dir, temp, Date.now(), 60_000, false)).toBe(true)
    expect(existsSync(join(dir, temp))).toBe(false)
  })

  it('moves a corrupt file into .quarantine/ and refuses a symlinked quarantine folder', () => {
    const dir = tempDir()
    writeFileSync(join(dir, name), 'not json')
    const moved = quarantine(dir, name, Buffer.from('not json'))
    expect(moved && readFileSync(moved, 'utf8')).toBe('not json')
    expect(lstatSync(join(dir, '.quarantine')).mode & 0o777).toBe(0o700)

    const other = tempDir()
    const elsewhere = tempDir()
    symlinkSync(elsewhere, join(other, '.quarantine'))
    writeFileSync(join(other, name), 'bad')
    expect(quarantine(other, name, Buffer.from('bad'))).toBeNull()
    expect(readdirSync(elsewhere)).toEqual([])
    expect(existsSync(join(other, name))).toBe(true)
  })
})
