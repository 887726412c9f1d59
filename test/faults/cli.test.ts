// Fault suite, CLI: planted control characters, hanging endpoints, huge registries.
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { table } from '../../src/cli/output.js'
import { probeUrls } from '../../src/health.js'
import { Registry } from '../../src/registry.js'
import { exited, ROOT, sandbox, stdoutOf, track, waitFor, writeDeadEntry } from '../helpers.js'

const WSREG = join(ROOT, 'dist', 'cli', 'wsreg.cjs')

// What a hostile entry carries: title set (OSC 0), screen clear, clipboard write (OSC 52), C1 CSI, a bidi
// override, a carriage return and a newline that would forge a row of its own.
const EVIL = 'x\u001b]0;pwned\u0007\u001b[2J\u001b]52;c;ZXZpbA==\u0007\u009b31m\u202eabc\rFAKE  alive  1\ny'

function runWsreg(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = track(spawn(process.execPath, [WSREG, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' } }))
    let stdout = ''
    let stderr = ''
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

// Anything but a newline that a terminal would act on.
// eslint-disable-next-line no-control-regex
const ACTIVE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u2028\u2029]/u

function expectInert(text: string): void {
  expect(text).not.toMatch(ACTIVE)
  expect(text).not.toContain('\nFAKE')
}

/** A registry with one live entry and one dead entry whose name, url, meta and cwd carry control characters. */
async function planted() {
  const box = sandbox()
  const registry = new Registry({ dir: box.dir })
  const cwd = join(box.root, `ws${EVIL.replace(/\u0000/g, '')}`)
  mkdirSync(cwd)
  const entry = await registry.write({ cwd, name: 'plain', url: 'http://127.0.0.1:1/' })
  const file = registry.entryPath(cwd)
  const record = JSON.parse(readFileSync(file, 'utf8'))
  Object.assign(record, { name: `n${EVIL}`, url: `http://127.0.0.1:1/${EVIL}`, meta: { note: EVIL } })
  writeFileSync(file, JSON.stringify(record), { mode: 0o600 })
  const dead = join(box.root, `dead${EVIL}`)
  mkdirSync(dead)
  await writeDeadEntry(registry, dead)
  return { ...box, registry, cwd, id: entry.id, record }
}

describe('planted control characters never reach the terminal', () => {
  it('ls, ls --all, show, prune --dry-run and doctor print them as visible escapes, one row per entry', async () => {
    const { dir, id } = await planted()
    const ls = await runWsreg(['ls', '--no-prune', '--dir', dir])
    expect(ls.code).toBe(0)
    expectInert(ls.stdout + ls.stderr)
    expect(ls.stdout.trimEnd().split('\n')).toHaveLength(2) // header and the one live row
    expect(ls.stdout).toContain('\\e]0;pwned')
    const all = await runWsreg(['ls', '--all', '--no-prune', '--dir', dir])
    expectInert(all.stdout + all.stderr)
    expect(all.stdout.trimEnd().split('\n')).toHaveLength(3)
    for (const args of [['show', id], ['prune', '--dry-run'], ['doctor']]) {
      const result = await runWsreg([...args, '--dir', dir])
      expectInert(result.stdout + result.stderr)
    }
    const show = await runWsreg(['show', id, '--dir', dir])
    expect(show.stdout).toContain('\\u{202e}')
    const doctor = await runWsreg(['doctor', '--dir', dir])
    expect(doctor.stdout).toContain('deadx\\e]0;pwned')
  })

  it('--json keeps every value exact (and still inert on a terminal)', async () => {
    const { dir, id, record, cwd } = await planted()
    const ls = await runWsreg(['--json', 'ls', '--no-prune', '--dir', dir])
    expect(ls.stdout).not.toMatch(ACTIVE)
    const rows = JSON.parse(ls.stdout)
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ name: record.name, url: record.url, meta: record.meta, cwd })
    const show = await runWsreg(['--json', 'show', id, '--dir', dir])
    expect(show.stdout).not.toMatch(ACTIVE)
    expect(JSON.parse(show.stdout)).toMatchObject({ name: record.name, url: record.url, meta: record.meta, cwd })
  })

  it('watch prints the event of a planted entry as one inert line', async () => {
    const box = sandbox()
    const registry = new Registry({ dir: box.dir })
    const watcher = track(spawn(process.execPath, [WSREG, 'watch', '--interval', '50', '--dir', box.dir], { env: { ...process.env, NO_COLOR: '1' } }))
    const output = stdoutOf(watcher)
    await waitFor(() => output().includes('ready'), 10_000, 'watch to be ready')
    const cwd = join(box.root, `ws${EVIL}`)
    mkdirSync(cwd)
    await registry.write({ cwd, name: 'plain' })
    await waitFor(() => / up /.test(output()), 10_000, 'the up event')
    watcher.kill('SIGTERM')
    expectInert(output())
    expect(output().trimEnd().split('\n')).toHaveLength(2)
  })
})

describe('huge registries', () => {
  it('the table formatter lays out 200k rows without a stack overflow', () => {
    const rows = Array.from({ length: 200_000 }, (_, index) => [`ws-${index}`, 'alive', String(index)])
    const text = table(['NAME', 'STATUS', 'PID'], rows, { out: process.stdout, err: process.stderr, color: false })
    const lines = text.split('\n')
    expect(lines).toHaveLength(200_001)
    expect(lines[200_000]).toBe('ws-199999  alive   199999')
  })
})

/** A real HTTP-ish server on loopback that sends a status line, then one header byte every 300 ms, forever. */
async function trickler(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => undefined)
    socket.write('HTTP/1.1 200 OK\r\nX-Slow: ')
    const drip = setInterval(() => socket.write('a'), 300)
    socket.on('close', () => {
      clearInterval(drip)
      sockets.delete(socket)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${port}/`,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

describe('probes have a total deadline', () => {
  it('ls --probe finishes and reports down when an endpoint trickles a header byte every 300 ms', async () => {
    const server = await trickler()
    try {
      const box = sandbox()
      await new Registry({ dir: box.dir }).write({ cwd: box.ws, url: server.url })
      const child = track(spawn(process.execPath, [WSREG, '--json', 'ls', '--probe', '--dir', box.dir], { env: { ...process.env, NO_COLOR: '1' } }))
      const output = stdoutOf(child)
      // Before the deadline this waited for a 16 KiB header at 3 bytes a second: over an hour.
      expect(await Promise.race([exited(child), new Promise((resolve) => setTimeout(resolve, 20_000, 'still probing after 20 s'))])).toEqual({ code: 0, signal: null })
      expect(JSON.parse(output())[0]).toMatchObject({ url: server.url, health: 'down' })
    } finally {
      await server.close()
    }
  }, 30_000)

  it('one listing stops probing at its deadline: the probes in flight count as down, the rest get no health', async () => {
    const server = await trickler()
    try {
      const urls = Array.from({ length: 6 }, () => server.url)
      const health = await Promise.race([
        probeUrls(urls, { concurrency: 1, timeoutMs: 60_000, deadlineMs: 500 }),
        new Promise((resolve) => setTimeout(resolve, 20_000, 'still probing after 20 s')),
      ])
      expect(health).toEqual(['down', undefined, undefined, undefined, undefined, undefined])
    } finally {
      await server.close()
    }
  }, 30_000)
})
