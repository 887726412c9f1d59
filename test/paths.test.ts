import { mkdirSync, symlinkSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { RegistryError } from '../src/errors.js'
import { canonicalCwd, defaultRegistryDir, registryDirEnvName, workspaceId } from '../src/paths.js'
import { Registry } from '../src/registry.js'
import { tempDir } from './helpers.js'

describe('workspaceId', () => {
  it('matches the golden values of DESIGN.md', () => {
    expect(workspaceId('/Users/dan/projects/foo')).toBe('726a213943fe1d41')
    expect(workspaceId('/Users/dan/projects/bar')).toBe('45675b631d01125f')
  })

  it('is one id for a symlink, a relative path and a trailing slash to the same folder', () => {
    const root = tempDir()
    const real = join(root, 'real')
    mkdirSync(real)
    symlinkSync(real, join(root, 'link'))
    const id = workspaceId(real)
    expect(workspaceId(join(root, 'link'))).toBe(id)
    expect(workspaceId(`${real}/`)).toBe(id)
    expect(workspaceId(relative(process.cwd(), real))).toBe(id)
    expect(canonicalCwd(join(root, 'link') + '/')).toBe(real)
  })

  it('keeps the lexical path of a folder that does not exist', () => {
    expect(canonicalCwd('/no/such/dir/')).toBe('/no/such/dir')
    expect(canonicalCwd('/')).toBe('/')
  })

  it('resolves a missing path through its longest existing prefix: one id before and after the folder is created', () => {
    const root = tempDir()
    mkdirSync(join(root, 'real'))
    symlinkSync(join(root, 'real'), join(root, 'link'))
    const typed = join(root, 'link', 'clone', 'sub')
    expect(canonicalCwd(typed)).toBe(join(root, 'real', 'clone', 'sub'))
    const before = workspaceId(typed)
    mkdirSync(join(root, 'real', 'clone', 'sub'), { recursive: true })
    expect(workspaceId(typed)).toBe(before)
    expect(workspaceId(join(root, 'real', 'clone', 'sub'))).toBe(before)
  })

  it('follows a dangling symlink, so it names its target before the target is created', () => {
    const root = tempDir()
    symlinkSync(join(root, 'later'), join(root, 'dangling'))
    symlinkSync('later', join(root, 'relative'))
    expect(canonicalCwd(join(root, 'dangling', 'x'))).toBe(join(root, 'later', 'x'))
    expect(canonicalCwd(join(root, 'relative'))).toBe(join(root, 'later'))
    const before = workspaceId(join(root, 'dangling'))
    mkdirSync(join(root, 'later'))
    expect(workspaceId(join(root, 'dangling'))).toBe(before)
  })

  it('keeps a symlink loop lexical instead of following it forever', () => {
    const root = tempDir()
    symlinkSync(join(root, 'b'), join(root, 'a'))
    symlinkSync(join(root, 'a'), join(root, 'b'))
    expect(canonicalCwd(join(root, 'a', 'x'))).toMatch(/\/[ab]\/x$/)
  })

  it('applies .. lexically to the missing rest, like path.resolve', () => {
    const root = tempDir()
    expect(canonicalCwd(`${root}/missing/../other/`)).toBe(join(root, 'other'))
  })

  it('finds the existing prefix of a path with 50,000 missing names in a few lookups, not one per name', () => {
    const root = tempDir()
    const deep = root + '/x'.repeat(50_000)
    expect(canonicalCwd(deep)).toBe(deep)
  })

  it('refuses an empty path and NUL bytes with E_INVALID', () => {
    expect(() => canonicalCwd('')).toThrow(RegistryError)
    expect(() => workspaceId('/a\0b')).toThrow(/NUL/)
  })
})

describe('defaultRegistryDir', () => {
  it('prefers <APP>_REGISTRY_DIR, upper-casing the app and mapping other characters to _', () => {
    expect(registryDirEnvName('my-app.v2')).toBe('MY_APP_V2_REGISTRY_DIR')
    expect(defaultRegistryDir('my-app.v2', { MY_APP_V2_REGISTRY_DIR: '/x/reg', XDG_STATE_HOME: '/s', HOME: '/h' })).toBe('/x/reg')
  })

  it('then $XDG_STATE_HOME/<app>/workspaces, then ~/.local/state/<app>/workspaces', () => {
    expect(defaultRegistryDir('tool', { XDG_STATE_HOME: '/s', HOME: '/h' })).toBe('/s/tool/workspaces')
    expect(defaultRegistryDir('tool', { HOME: '/h' })).toBe('/h/.local/state/tool/workspaces')
  })

  it('ignores a relative XDG_STATE_HOME and refuses a relative override', () => {
    expect(defaultRegistryDir('tool', { XDG_STATE_HOME: 'rel', HOME: '/h' })).toBe('/h/.local/state/tool/workspaces')
    expect(() => defaultRegistryDir('tool', { TOOL_REGISTRY_DIR: 'rel/dir' })).toThrow(/not an absolute path/)
    expect(() => new Registry({ dir: 'relative' })).toThrow(RegistryError)
  })

  it('keeps a "[" in HOME literally (no globbing)', () => {
    expect(defaultRegistryDir('tool', { HOME: '/home/[x]' })).toBe('/home/[x]/.local/state/tool/workspaces')
  })

  it('fails with E_NO_HOME when there is no home and no override', () => {
    const original = process.env.HOME
    try {
      // os.homedir() falls back to the passwd entry when HOME is empty, so only a relative one proves the check.
      expect(() => defaultRegistryDir('tool', { HOME: 'not/absolute' })).toThrow(expect.objectContaining({ code: 'E_NO_HOME' }))
    } finally {
      process.env.HOME = original
    }
  })

  it('refuses app names that are not folder names', () => {
    expect(() => defaultRegistryDir('../evil', {})).toThrow(expect.objectContaining({ code: 'E_INVALID' }))
  })
})
