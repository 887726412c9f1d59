import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ETCD3_INSTALL } from '../src/fleet/etcd.js'
import { FIXTURES, ROOT, tempDir } from './helpers.js'

const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, Record<string, unknown>>

/** A consumer project with this package installed from dist, without etcd3, and `source` as its index.ts. */
function consumer(source: string): string {
  const dir = tempDir('wsreg-consumer-')
  const installed = join(dir, 'node_modules', 'workspace-registry')
  mkdirSync(installed, { recursive: true })
  cpSync(join(ROOT, 'package.json'), join(installed, 'package.json'))
  cpSync(join(ROOT, 'dist'), join(installed, 'dist'), { recursive: true })
  mkdirSync(join(dir, 'node_modules', '@types'))
  symlinkSync(join(ROOT, 'node_modules', '@types', 'node'), join(dir, 'node_modules', '@types', 'node'))
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n')
  writeFileSync(join(dir, 'index.ts'), source)
  const options = { module: 'nodenext', moduleResolution: 'nodenext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] }
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: options, files: ['index.ts'] }))
  return dir
}

function typecheck(dir: string): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8' })
  return { status: result.status, output: result.stdout + result.stderr }
}

describe('npm pack', () => {
  it('ships the built library, CLI, schema and docs — and no tests, sources or fixtures', () => {
    const result = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' })
    expect(result.status).toBe(0)
    const files: string[] = JSON.parse(result.stdout)[0].files.map((file: { path: string }) => file.path)
    for (const needed of ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'schema/entry.v1.json', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/fleet/index.js', 'dist/fleet/index.d.ts']) {
      expect(files).toContain(needed)
    }
    const unwanted = files.filter((file) => /^(src|test|fixtures|bench|demo|docs|\.ci|node_modules)\//.test(file) || file.endsWith('.map'))
    expect(unwanted).toEqual([])
  })
})

describe('the fleet subpath and its optional peer etcd3', () => {
  it('exports workspace-registry/fleet, and declares etcd3 only as an optional peer (the install command names its range)', () => {
    expect(manifest.exports?.['./fleet']).toEqual({ types: './dist/fleet/index.d.ts', default: './dist/fleet/index.js' })
    expect(manifest.dependencies?.etcd3).toBeUndefined()
    expect(manifest.optionalDependencies?.etcd3).toBeUndefined()
    expect(manifest.peerDependenciesMeta?.etcd3).toEqual({ optional: true })
    expect(ETCD3_INSTALL).toBe(`npm install etcd3@${String(manifest.peerDependencies?.etcd3)}`)
  })

  // tsc with lib checks on reads all of @types/node: ~5 s alone, several times that on a loaded 2-core machine.
  it('a TypeScript consumer without etcd3 compiles against the main entry with lib checks on', { timeout: 120_000 }, () => {
    const dir = consumer("import { Registry, RegistryError, type Entry } from 'workspace-registry'\nexport const registry: Registry = new Registry()\nexport const entry: Entry | undefined = undefined\nexport const error = new RegistryError('E_UNAVAILABLE', 'x')\n")
    const result = typecheck(dir)
    expect(result.output).toBe('')
    expect(result.status).toBe(0)
  })

  it('the fleet subpath imports without etcd3; connecting fails with E_UNAVAILABLE naming the install command', () => {
    const dir = consumer('')
    const script = "import { EtcdStore } from 'workspace-registry/fleet'\nEtcdStore.connect({ url: 'etcd://127.0.0.1:1' }).then(() => console.log('connected'), (error) => console.log(JSON.stringify({ code: error.code, message: error.message })))\n"
    writeFileSync(join(dir, 'main.mjs'), script)
    const result = spawnSync(process.execPath, ['--import', join(FIXTURES, 'no-etcd3.mjs'), join(dir, 'main.mjs')], { cwd: dir, encoding: 'utf8' })
    expect(result.stderr).toBe('')
    const outcome = JSON.parse(result.stdout) as { code: string; message: string }
    expect(outcome.code).toBe('E_UNAVAILABLE')
    expect(outcome.message).toContain(ETCD3_INSTALL)
  })
})
