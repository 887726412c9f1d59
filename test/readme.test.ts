import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { HAVE_ETCD, startEtcd } from './etcd.js'
import { CLI, ROOT, exited, sandbox, tempDir, track, waitFor } from './helpers.js'

// Every code sample in the README runs here: `js` blocks as ES modules inside the package (so
// `import … from 'workspace-registry'` resolves to this package), `sh` blocks line by line with
// `wsreg` on the PATH. `npm …` lines are what CI itself runs (`.ci/run`), and `npm run demo` is
// run by test/demo.test.ts; `text` blocks are sample output, not code. Fleet samples run against a
// real etcd started here (its address replaces `etcd.internal:2379`); `wsreg publish` and
// `wsreg watch` run in the background until they report being in sync / ready.
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
const blocks = [...readme.matchAll(/^```(\w+)\n([\s\S]*?)^```$/gm)].map((match, index) => ({ index, lang: match[1] as string, code: match[2] as string }))
const samples = join(ROOT, '.readme-samples')
afterAll(() => rmSync(samples, { recursive: true, force: true }))

function environment() {
  const { dir, ws, root } = sandbox()
  const bin = tempDir()
  writeFileSync(join(bin, 'wsreg'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`)
  chmodSync(bin, 0o755)
  chmodSync(join(bin, 'wsreg'), 0o755)
  const env = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    NO_COLOR: '1',
    WSREG_REGISTRY_DIR: dir,
    MY_TOOL_REGISTRY_DIR: join(root, 'my-tool'),
    MY_APP_REGISTRY_DIR: join(root, 'my-app'),
  }
  return { env, ws }
}

describe('README samples', () => {
  it('has the samples this test expects to run', () => {
    expect(blocks.filter((block) => block.lang === 'js').length).toBeGreaterThanOrEqual(3)
    expect(blocks.filter((block) => block.lang === 'sh').length).toBeGreaterThanOrEqual(3)
  })

  for (const block of blocks.filter((candidate) => candidate.lang === 'js')) {
    it(`js sample #${block.index} runs and exits 0`, () => {
      const { env, ws } = environment()
      mkdirSync(samples, { recursive: true })
      const file = join(samples, `sample-${block.index}.mjs`)
      writeFileSync(file, block.code)
      const result = spawnSync(process.execPath, [file], { cwd: ws, env, encoding: 'utf8', timeout: 20_000 })
      expect(result.stderr).toBe('')
      expect(result.status).toBe(0)
    })
  }

  for (const block of blocks.filter((candidate) => candidate.lang === 'sh')) {
    const lines = block.code.split('\n').filter((line) => line.trim() && !line.trim().startsWith('npm ') && !line.trim().startsWith('#'))
    if (lines.length === 0) continue
    const fleet = block.code.includes('etcd://')
    const title = `sh sample #${block.index} runs line by line, each exiting 0${fleet && !HAVE_ETCD ? ' (skipped: no etcd binary at /usr/bin/etcd)' : ''}`
    it.skipIf(fleet && !HAVE_ETCD)(title, async () => {
      const { env, ws } = environment()
      const etcd = fleet ? await startEtcd() : undefined
      const background: Array<ReturnType<typeof spawn>> = []
      try {
        for (const raw of lines) {
          const line = etcd ? raw.replaceAll('etcd.internal:2379', etcd.endpoint) : raw
          if (/\bjq\b/.test(line) && spawnSync('sh', ['-c', 'command -v jq']).status !== 0) {
            console.warn(`skipped (jq is not installed): ${line}`)
            continue
          }
          if (/^wsreg (publish|watch)\b/.test(line.trim())) {
            const child = track(spawn('sh', ['-c', `exec ${line}`], { cwd: ws, env }))
            background.push(child)
            let output = ''
            child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
            child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
            await waitFor(() => {
              if (child.exitCode !== null) throw new Error(`${line} exited ${child.exitCode}: ${output}`)
              return /in sync|ready/.test(output)
            }, 15_000, line)
            continue
          }
          const result = spawnSync('sh', ['-c', line], { cwd: ws, env, encoding: 'utf8', timeout: 20_000 })
          expect({ line, status: result.status, stderr: result.status === 0 ? '' : result.stderr }).toEqual({ line, status: 0, stderr: '' })
        }
      } finally {
        for (const child of background) child.kill('SIGTERM')
        await Promise.all(background.map(exited))
        await etcd?.destroy()
      }
    })
  }
})
