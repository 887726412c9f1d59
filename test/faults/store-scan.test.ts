// Faults on the read, scan and delete side of the store: an error is not evidence, and nothing is moved or deleted
// that was not judged. Every fault here is real (descriptor limits, read-only mounts, racing processes, reused pids).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { parseEntry, type Entry } from '../../src/entry.js'
import { QUARANTINE_DIR } from '../../src/paths.js'
import { Registry } from '../../src/registry.js'
import { CLI, FIXTURES, deadPid, exited, fixture, sandbox, sleeper, stdoutOf, tempDir, waitFor } from '../helpers.js'
import { missing, readOnlyView, runBehind } from './kit.js'

/** A registry holding `count` live entries (owned by this test process), with their files' bytes. */
async function liveRegistry(count: number): Promise<{ registry: Registry; dir: string; root: string; files: Map<string, string> }> {
  const { root, dir } = sandbox()
  const registry = new Registry({ dir })
  const files = new Map<string, string>()
  for (let i = 0; i < count; i++) {
    const cwd = join(root, `w${i}`)
    mkdirSync(cwd)
    const entry = await registry.write({ cwd })
    files.set(`${entry.id}.json`, readFileSync(join(dir, `${entry.id}.json`), 'utf8'))
  }
  return { registry, dir, root, files }
}

/** Every entry file is still there with the bytes it had, and nothing went to quarantine. */
function expectUntouched(dir: string, files: Map<string, string>): void {
  for (const [name, text] of files) expect(readFileSync(join(dir, name), 'utf8'), name).toBe(text)
  expect(existsSync(join(dir, QUARANTINE_DIR)) ? readdirSync(join(dir, QUARANTINE_DIR)) : []).toEqual([])
}

const starved = (args: string[]) => runBehind(['prlimit', '--nofile=128'], join(FIXTURES, 'fd-starved.mjs'), args)

describe('EMFILE: a file that cannot be opened is not corrupt', () => {
  it(`prune at the open-file limit never quarantines or deletes a live entry${missing('prlimit')}`, { timeout: 60_000 }, async () => {
    const { dir, files } = await liveRegistry(300)
    const run = await starved(['prune', dir])
    expect(run.code, run.stderr).toBe(0)
    const { passes, unreadable } = JSON.parse(run.stdout).result
    expect(passes).toBe(3)
    expectUntouched(dir, files)
    expect(unreadable, 'the fault was made: some opens failed with EMFILE').toBeGreaterThan(0)
  })

  it(`doctor --fix at the open-file limit never quarantines or deletes a live entry${missing('prlimit')}`, { timeout: 60_000 }, async () => {
    const { dir, files } = await liveRegistry(300)
    const run = await starved(['doctor', dir])
    expect(run.code, run.stderr).toBe(0)
    const { passes, unreadable } = JSON.parse(run.stdout).result
    expect(passes).toBe(3)
    expectUntouched(dir, files)
    expect(unreadable, 'the fault was made: some opens failed with EMFILE').toBeGreaterThan(0)
  })

  it(`write at the open-file limit fails with E_UNREADABLE and leaves the caller's own entry in place${missing('prlimit')}`, async () => {
    const { dir, root, files } = await liveRegistry(3)
    const run = await starved(['write', dir, join(root, 'w1')])
    expect(JSON.parse(run.stdout), run.stderr).toMatchObject({ error: 'E_UNREADABLE', message: expect.stringMatching(/EMFILE.*ulimit -n/) })
    expectUntouched(dir, files)
  })

  it(`register at the open-file limit fails with E_UNREADABLE and moves nothing${missing('prlimit')}`, async () => {
    const { dir, root, files } = await liveRegistry(3)
    const run = await starved(['register', dir, join(root, 'w2')])
    expect(JSON.parse(run.stdout), run.stderr).toMatchObject({ error: 'E_UNREADABLE' })
    expectUntouched(dir, files)
  })
})
