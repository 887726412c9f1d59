import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Registry } from '../src/index.js'
import { CLI, ROOT, sandbox, tempDir, track, writeDeadEntry } from './helpers.js'

const sleep = () => track(spawn('sleep', ['300'], { stdio: 'ignore' }))

// The README's readers in other languages (the `python` block and the `bash` one with jq) run here against
// a registry holding one running owner, one dead owner, one pid reused by another process and one idle row:
// each must print the running one only.
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
const block = (lang: string): string => {
  const code = new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\`$`, 'm').exec(readme)?.[1]
  if (code === undefined) throw new Error(`README.md has no ${lang} block`)
  return code
}

async function registryWithEveryKind(): Promise<{ dir: string; env: NodeJS.ProcessEnv; pid: number }> {
  const { root, dir, ws } = sandbox()
  const registry = new Registry({ dir })
  const owner = sleep()
  await registry.write({ cwd: ws, pid: owner.pid, name: 'running one' })
  await writeDeadEntry(registry, join(root, 'dead'))
  const reused = join(root, 'reused')
  await registry.write({ cwd: reused, pid: sleep().pid, name: 'reused' })
  const file = registry.entryPath(reused)
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), pidStartTime: '1' }))
  await registry.register(root, 'idle')
  const bin = tempDir()
  writeFileSync(join(bin, 'wsreg'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`)
  chmodSync(join(bin, 'wsreg'), 0o755)
  return { dir, pid: owner.pid as number, env: { ...process.env, WSREG_REGISTRY_DIR: dir, PATH: `${bin}:${process.env.PATH}` } }
}

describe('README readers in other languages apply the liveness rule', () => {
  it('the Python reader prints the running workspace, not the dead, the reused pid or the idle row', async () => {
    const { env, pid, dir } = await registryWithEveryKind()
    const result = spawnSync('python3', ['-c', block('python')], { env, encoding: 'utf8' })
    expect(result.stderr).toBe('')
    expect(result.stdout).toBe(`running one ${pid} ${join(dir, '..', 'ws')} \n`)
  })

  it('the sh/jq one-liner prints the running workspace, not the dead, the reused pid or the idle row', async () => {
    const { env, pid } = await registryWithEveryKind()
    const result = spawnSync('sh', ['-c', block('bash')], { env, encoding: 'utf8' })
    expect(result.stderr).toBe('')
    expect(result.stdout).toBe(`running one ${pid}\n`)
  })
})
