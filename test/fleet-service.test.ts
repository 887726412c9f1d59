import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Registry } from '../src/index.js'
import { CLI, ROOT, exited, runCli, sleeper, tempDir, track, waitFor } from './helpers.js'
import { ETCD_BINARY, HAVE_ETCD, enableAuth, makeCertificates, startEtcd, type Certificates, type TestEtcd } from './etcd.js'

// docs/fleet-service.md is run as written: the unit's ExecStart line and the plist's
// ProgramArguments, with the documented environment, against a real etcd with TLS and auth. Only
// what names the deployment is swapped for the test's: the etcd address, the password file, the CA.
const doc = readFileSync(join(ROOT, 'docs', 'fleet-service.md'), 'utf8')
const block = (lang: string): string => {
  const match = new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\`$`, 'm').exec(doc)
  if (!match?.[1]) throw new Error(`docs/fleet-service.md has no ${lang} block`)
  return match[1]
}
const PASSWORD = 'service-S3cret'

describe.skipIf(!HAVE_ETCD)(`docs/fleet-service.md${HAVE_ETCD ? '' : ` (skipped: ${ETCD_BINARY} not found)`}`, () => {
  let etcd: TestEtcd
  let certs: Certificates
  beforeAll(async () => {
    certs = makeCertificates()
    etcd = await startEtcd({ tls: certs, clientCertAuth: false })
    await enableAuth(etcd, { rootPassword: 'root-S3cret', user: 'ci', password: PASSWORD, prefix: '/team/', tls: certs })
  })
  afterAll(async () => {
    await etcd?.destroy()
  })

  /** The documented environment with the test's etcd, password file and CA, plus `wsreg` on PATH and a registry with one live workspace. */
  async function environment(extra: Record<string, string>): Promise<{ env: NodeJS.ProcessEnv; ws: string }> {
    const root = tempDir()
    const password = join(root, 'etcd-password')
    writeFileSync(password, `${PASSWORD}\n`, { mode: 0o600 })
    const swap = (value: string): string =>
      value.replace('etcd.internal:2379', etcd.endpoint).replace(/^\/(home|Users)\/me\/\.config\/wsreg\/etcd-password$/, password).replace('/etc/ssl/certs/etcd-ca.pem', certs.ca)
    const bin = join(root, 'bin')
    mkdirSync(bin)
    writeFileSync(join(bin, 'wsreg'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`)
    chmodSync(join(bin, 'wsreg'), 0o755)
    const ws = join(root, 'ws')
    mkdirSync(ws)
    const dir = join(root, 'reg')
    await new Registry({ dir }).write({ cwd: ws, pid: sleeper().pid as number })
    const env: NodeJS.ProcessEnv = { HOME: root, WSREG_REGISTRY_DIR: dir, NO_COLOR: '1', PATH: `${bin}:/usr/bin:/bin`, WSREG_ETCD_CA: certs.ca }
    for (const [key, value] of Object.entries(extra)) env[key] = swap(value)
    env.PATH = `${bin}:${env.PATH}`
    return { env, ws }
  }

  /** Start `argv` as the service manager would, wait until it is in sync and listed, then stop it with SIGTERM. */
  async function runService(argv: string[], env: NodeJS.ProcessEnv, ws: string): Promise<void> {
    const [file, ...args] = argv as [string, ...string[]]
    const child = track(spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] }))
    let stderr = ''
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    await waitFor(() => stderr.includes('in sync') || child.exitCode !== null, 15_000, 'the service in sync')
    expect(stderr).toMatch(/publishing .* to etcds:\/\/127\.0\.0\.1:\d+\/team/)
    const listed = await runCli(['ls', '--json', '--store', `etcds://${etcd.endpoint}/team`], { env: { WSREG_ETCD_CA: certs.ca, WSREG_ETCD_USER: 'ci', WSREG_ETCD_PASSWORD: PASSWORD } })
    expect((JSON.parse(listed.stdout) as Array<{ cwd: string }>).map((row) => row.cwd)).toEqual([ws])
    child.kill('SIGTERM')
    expect(await exited(child)).toEqual({ code: 0, signal: null })
    const after = await runCli(['ls', '--json', '--store', `etcds://${etcd.endpoint}/team`], { env: { WSREG_ETCD_CA: certs.ca, WSREG_ETCD_USER: 'ci', WSREG_ETCD_PASSWORD: PASSWORD } })
    expect(JSON.parse(after.stdout)).toEqual([])
    expect(stderr).not.toContain(PASSWORD)
  }

  it("the systemd unit's ExecStart, with its EnvironmentFile, publishes over TLS with auth and withdraws the entries on its KillSignal", async () => {
    const unit = block('ini')
    const service = (key: string): string => new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1] ?? ''
    expect(service('EnvironmentFile')).toBe('%h/.config/wsreg/publish.env')
    expect(service('KillSignal')).toBe('SIGTERM')
    const variables = Object.fromEntries(block('env').trim().split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]))
    const { env, ws } = await environment(variables)
    // systemd splits ExecStart on whitespace (no shell); the line has no quoting or variables to expand.
    const execStart = service('ExecStart')
    expect(execStart).not.toMatch(/["'$\\%]/)
    await runService(execStart.split(/\s+/), env, ws)
    const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' })
    if (analyze.status === 0) {
      const file = join(tempDir(), 'wsreg-publish.service')
      writeFileSync(file, unit)
      const verify = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' })
      expect(verify.stderr.split('\n').filter((line) => line.includes('wsreg-publish.service') && !/Failed to load environment|EnvironmentFile|proc|bus|user manager/i.test(line))).toEqual([])
    }
  })

  it("the launchd plist runs the same command as the unit (ProgramArguments = ExecStart) with the same settings, and keeps the password out of the plist", () => {
    const plist = block('xml')
    const strings = (key: string, tag: 'array' | 'dict'): string[] => {
      const section = new RegExp(`<key>${key}</key>\\s*<${tag}>([\\s\\S]*?)</${tag}>`).exec(plist)?.[1] ?? ''
      return [...section.matchAll(/<(?:key|string)>([^<]*)<\/(?:key|string)>/g)].map((match) => match[1] as string)
    }
    // The unit's ExecStart is started as written above; the plist must say exactly the same.
    expect(strings('ProgramArguments', 'array')).toEqual((/^ExecStart=(.*)$/m.exec(block('ini'))?.[1] ?? '').split(/\s+/))
    const pairs = strings('EnvironmentVariables', 'dict')
    const variables = new Map(pairs.flatMap((value, index) => (index % 2 === 0 ? [[value, pairs[index + 1]] as const] : [])))
    const envFile = new Map(block('env').trim().split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]))
    for (const key of ['WSREG_STORE', 'WSREG_ETCD_USER', 'WSREG_ETCD_PASSWORD_FILE']) expect(variables.get(key), key).toBe(key === 'WSREG_ETCD_PASSWORD_FILE' ? envFile.get(key)?.replace('/home/me', '/Users/me') : envFile.get(key))
    expect(variables.has('WSREG_ETCD_PASSWORD')).toBe(false)
    expect(/<key>KeepAlive<\/key>\s*<true\/>/.test(plist)).toBe(true)
  })
})
