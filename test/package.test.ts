import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join, posix } from 'node:path'
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

/** The files of `npm pack`, as npm would ship them. */
function packedFiles(): string[] {
  const result = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' })
  expect(result.status).toBe(0)
  return JSON.parse(result.stdout)[0].files.map((file: { path: string }) => file.path)
}

/** Every file reachable by relative imports (static, dynamic, `export … from`, `require`) from `starts`. */
function reachable(starts: string[]): Set<string> {
  const seen = new Set<string>()
  const queue = [...starts]
  while (queue.length > 0) {
    const file = queue.pop() as string
    if (seen.has(file)) continue
    seen.add(file)
    const text = readFileSync(join(ROOT, file), 'utf8')
    for (const match of text.matchAll(/(?:from\s*|import\s*\(\s*|require\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const target = posix.normalize(posix.join(posix.dirname(file), match[1] as string))
      queue.push(file.endsWith('.d.ts') ? target.replace(/\.js$/, '.d.ts') : target)
    }
  }
  return seen
}

describe('npm pack', () => {
  const files = packedFiles()

  it('ships the built library, CLI, schema and docs — and no tests, sources or fixtures', () => {
    for (const needed of ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'schema/entry.v1.json', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/wsreg.cjs', 'dist/fleet/index.js', 'dist/fleet/index.d.ts']) {
      expect(files).toContain(needed)
    }
    const unwanted = files.filter((file) => /^(src|test|fixtures|bench|demo|docs|scripts|\.ci|node_modules)\//.test(file) || file.endsWith('.map'))
    expect(unwanted).toEqual([])
  })

  it('ships no file that nothing can import: every file is reached from the exports, the types or the bin', () => {
    const exported = Object.values(manifest.exports as Record<string, string | Record<string, string>>).flatMap((target) => (typeof target === 'string' ? [target] : Object.values(target)))
    const starts = [...exported, ...Object.values(manifest.bin as Record<string, string>), manifest.types as unknown as string].map((file) => posix.normalize(file))
    const used = reachable(starts)
    // A declaration file is kept when it is reached from the types, or declares a module that is reached.
    const dead = files.filter((file) => /\.(c|m)?js$|\.d\.ts$/.test(file) && !used.has(file) && !used.has(file.replace(/\.d\.ts$/, '.js')))
    expect(dead).toEqual([])
  })

  it('names its repository, homepage and issue tracker; a consumer install runs no script of ours (no prepare, no install hooks)', () => {
    expect(manifest.repository?.url).toMatch(/^git\+https:\/\//)
    expect(String(manifest.homepage)).toMatch(/^https:\/\//)
    expect(manifest.bugs?.url).toMatch(/^https:\/\//)
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) expect(manifest.scripts?.[hook], hook).toBeUndefined()
    // A clone still builds on `npm install`: the `dependencies` script runs for the project root only.
    expect(manifest.scripts?.dependencies).toBe('npm run build')
    expect(manifest.scripts?.prepack).toBe('npm run build')
  })

  it('a consumer install from the tarball prints no script warning for our package, stays under 1 MB and runs its wsreg bin', () => {
    const packDir = tempDir('wsreg-pack-')
    const packed = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], { cwd: ROOT, encoding: 'utf8' })
    expect(packed.status).toBe(0)
    const tarball = join(packDir, JSON.parse(packed.stdout)[0].filename as string)
    const dir = tempDir('wsreg-consumer-')
    writeFileSync(join(dir, 'package.json'), '{ "name": "consumer", "version": "1.0.0", "private": true }\n')
    // signal-exit comes from npm's cache (npm ci filled it); the registry is asked only when it is missing.
    const installed = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: dir, encoding: 'utf8' })
    expect(installed.status).toBe(0)
    expect(`${installed.stdout}${installed.stderr}`).not.toMatch(/workspace-registry@/)
    const kib = Number(spawnSync('du', ['-sk', join(dir, 'node_modules')], { encoding: 'utf8' }).stdout.split('\t')[0])
    expect(kib).toBeLessThan(1024)
    const version = spawnSync(join(dir, 'node_modules', '.bin', 'wsreg'), ['--version'], { encoding: 'utf8' })
    expect(version.stdout).toBe(`${String(manifest.version)}\n`)
  }, 60_000)

  it('the README points only at files that ship or at URLs', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const links = [...readme.matchAll(/\]\(([^)#]+)[^)]*\)/g)].map((match) => match[1] as string).filter((target) => !/^https?:\/\//.test(target))
    expect(links.filter((target) => !files.includes(posix.normalize(target)))).toEqual([])
    const forUsers = readme.slice(0, readme.indexOf('## Development'))
    const paths = [...forUsers.matchAll(/`((?:docs|src|test|bench|scripts|fixtures)\/[^`\s]*|\.\.\/shared\/[^`\s]*)`/g)].map((match) => match[1])
    expect(paths).toEqual([])
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
