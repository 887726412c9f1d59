import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Registry, RegistryError } from '../src/index.js'
import { EtcdStore, parseStoreUrl } from '../src/fleet/index.js'
import { storeAccess } from '../src/fleet/address.js'
import { CLI, runCli, sleeper, tempDir, track, waitFor } from './helpers.js'
import { ETCD_BINARY, HAVE_ETCD, enableAuth, makeCertificates, startEtcd, type Certificates, type TestEtcd } from './etcd.js'

const SECRET = 'pw-S3cret:@/%'
const ROOT_SECRET = 'root-S3cret'
const skipped = HAVE_ETCD ? '' : ` (skipped: ${ETCD_BINARY} not found — apt-get install etcd-server)`

async function failure(promise: Promise<unknown>): Promise<RegistryError> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught)
  expect(error).toBeInstanceOf(RegistryError)
  return error as RegistryError
}

/** A registry folder with one live workspace. */
async function localHost(): Promise<{ dir: string; ws: string }> {
  const root = tempDir()
  const ws = join(root, 'ws')
  mkdirSync(ws)
  const dir = join(root, 'reg')
  await new Registry({ dir }).write({ cwd: ws, pid: sleeper().pid as number })
  return { dir, ws }
}

describe('store URLs', () => {
  it('default the port to 2379, take several endpoints and a prefix, speak TLS for etcds://, and decode user:password@', () => {
    expect(parseStoreUrl('etcd://etcd.internal')).toMatchObject({ hosts: ['http://etcd.internal:2379'], prefix: '', tls: false, display: 'etcd://etcd.internal' })
    expect(parseStoreUrl('etcds://a,b:2380,[::1]/team/x/')).toMatchObject({ hosts: ['https://a:2379', 'https://b:2380', 'https://[::1]:2379'], prefix: '/team/x', tls: true })
    const address = parseStoreUrl(`etcds://ci%40corp:${encodeURIComponent(SECRET)}@10.0.0.1:2379/team`)
    expect(address).toMatchObject({ user: 'ci@corp', password: SECRET, hosts: ['https://10.0.0.1:2379'], prefix: '/team' })
    expect(address.display).toBe('etcds://10.0.0.1:2379/team')
  })

  it('refuses malformed URLs with E_INVALID, without echoing the password', () => {
    for (const url of ['http://localhost:2379', 'etcd://', 'etcd://a:99999', 'etcd://a b', `etcd://u:${encodeURIComponent(SECRET)}@a:b`]) {
      const error = (() => {
        try {
          parseStoreUrl(url)
        } catch (caught) {
          return caught as RegistryError
        }
      })()
      expect(error?.code).toBe('E_INVALID')
      expect(error?.message).toMatch(/etcds?:\/\/HOST\[:PORT\]/)
      expect(error?.message).not.toContain(encodeURIComponent(SECRET))
    }
  })

  it('takes login and certificates from options, then WSREG_ETCD_*, then the URL; a password file works; half a key pair or certificates without TLS are refused', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'pw'), `${SECRET}\n`)
    writeFileSync(join(dir, 'ca.pem'), 'CA')
    const address = parseStoreUrl('etcds://url-user:url-pw@h')
    expect(storeAccess(address, {}, {}).auth).toEqual({ username: 'url-user', password: 'url-pw' })
    expect(storeAccess(address, {}, { WSREG_ETCD_USER: 'env-user', WSREG_ETCD_PASSWORD_FILE: join(dir, 'pw') }).auth).toEqual({ username: 'env-user', password: SECRET })
    expect(storeAccess(address, { user: 'opt', password: 'opt-pw' }, { WSREG_ETCD_USER: 'env-user', WSREG_ETCD_PASSWORD: 'x' }).auth).toEqual({ username: 'opt', password: 'opt-pw' })
    expect(storeAccess(address, {}, { WSREG_ETCD_CA: join(dir, 'ca.pem') }).credentials?.rootCertificate.toString()).toBe('CA')
    expect(() => storeAccess(address, { cert: Buffer.from('c') }, {})).toThrow(/needs its key/)
    expect(() => storeAccess(parseStoreUrl('etcd://h'), { ca: Buffer.from('c') }, {})).toThrow(/write etcds:\/\//)
    expect(() => storeAccess(parseStoreUrl('etcd://h'), {}, { WSREG_ETCD_USER: 'u' })).toThrow(/WSREG_ETCD_PASSWORD/)
  })

  it('the CLI refuses a password in --store or --to (readable by anyone with ps), naming the environment variables instead', async () => {
    for (const args of [['ls', '--store'], ['watch', '--store'], ['publish', '--to']]) {
      const result = await runCli([...args, `etcd://ci:${encodeURIComponent(SECRET)}@127.0.0.1:1/team`])
      expect(result.code).toBe(2)
      expect(result.stderr).toMatch(/must not carry a password .*WSREG_STORE.*WSREG_ETCD_PASSWORD/)
      expect(result.stdout + result.stderr).not.toContain(encodeURIComponent(SECRET))
    }
  })
})

describe.skipIf(!HAVE_ETCD)(`fleet over TLS: etcds:// with a CA and client certificate made by openssl${skipped}`, () => {
  let etcd: TestEtcd
  let certs: Certificates
  beforeAll(async () => {
    certs = makeCertificates()
    etcd = await startEtcd({ tls: certs })
  })
  afterAll(async () => {
    await etcd?.destroy()
  })

  it('writes, lists and locks through the library with ca/cert/key options, and lists through the CLI with WSREG_ETCD_CA/_CERT/_KEY', async () => {
    const url = `etcds://${etcd.endpoint}/tls`
    const { dir, ws } = await localHost()
    const store = await EtcdStore.connect({ url, host: 'alpha', ttlSeconds: 2, ca: certs.ca, cert: readFileSync(certs.clientCert), key: certs.clientKey })
    try {
      const [entry] = await new Registry({ dir }).list()
      await store.write(entry as never)
      const release = await store.lock(ws)
      await release()
    } finally {
      await store.close({ revoke: false })
    }
    const env = { WSREG_ETCD_CA: certs.ca, WSREG_ETCD_CERT: certs.clientCert, WSREG_ETCD_KEY: certs.clientKey }
    const result = await runCli(['ls', '--json', '--store', url], { env })
    expect(result.stderr).toBe('')
    expect((JSON.parse(result.stdout) as Array<{ cwd: string; host: string }>).map((row) => [row.host, row.cwd])).toEqual([['alpha', ws]])
  })

  it('fails with E_UNAVAILABLE naming the store when the client certificate is missing', async () => {
    const store = await EtcdStore.connect({ url: `etcds://${etcd.endpoint}/tls`, ca: certs.ca })
    try {
      const error = await failure(store.list())
      expect(error.code).toBe('E_UNAVAILABLE')
      expect(error.message).toContain(`etcd at etcds://${etcd.endpoint}/tls is unreachable`)
    } finally {
      await store.close()
    }
  })
})

describe.skipIf(!HAVE_ETCD)(`fleet with etcd auth: a root user and a user whose role covers only /team${skipped}`, () => {
  let etcd: TestEtcd
  beforeAll(async () => {
    etcd = await startEtcd()
    await enableAuth(etcd, { rootPassword: ROOT_SECRET, user: 'ci', password: SECRET, prefix: '/team/' })
  })
  afterAll(async () => {
    await etcd?.destroy()
  })

  it('the restricted user publishes, lists, watches and locks under its prefix (login from the URL or WSREG_ETCD_USER/PASSWORD); the password shows nowhere', async () => {
    const { dir, ws } = await localHost()
    const env = { WSREG_ETCD_USER: 'ci', WSREG_ETCD_PASSWORD: SECRET }
    const child = track(spawn(process.execPath, [CLI, 'publish', '--host', 'alpha', '--ttl', '2', '--dir', dir], { env: { ...process.env, ...env, WSREG_STORE: `etcd://${etcd.endpoint}/team` }, stdio: ['ignore', 'ignore', 'pipe'] }))
    let stderr = ''
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    await waitFor(() => stderr.includes('in sync'), 10_000, 'the publisher in sync')
    expect(readFileSync(`/proc/${child.pid}/cmdline`, 'utf8')).not.toContain(SECRET)

    const store = await EtcdStore.connect({ url: `etcd://ci:${encodeURIComponent(SECRET)}@${etcd.endpoint}/team`, host: 'observer', ttlSeconds: 2 })
    const watcher = store.watch()
    try {
      const ready = await new Promise<{ entries: Array<{ entry: { cwd: string } }> }>((resolve) => watcher.once('ready', resolve))
      expect(ready.entries.map((row) => row.entry.cwd)).toEqual([ws])
      const release = await store.lock(ws)
      await release()
    } finally {
      await watcher.close()
      await store.close()
    }
    const listed = await runCli(['ls', '--json', '--store', `etcd://${etcd.endpoint}/team`], { env })
    expect((JSON.parse(listed.stdout) as Array<{ cwd: string }>).map((row) => row.cwd)).toEqual([ws])
    expect(stderr + listed.stdout + listed.stderr).not.toContain(SECRET)
  })

  it('with several endpoints, one of them down, every call fails over to the live one', async () => {
    const { dir } = await localHost()
    const [entry] = await new Registry({ dir }).list()
    const store = await EtcdStore.connect({ url: `etcd://127.0.0.1:1,${etcd.endpoint}/team/failover`, host: 'alpha', ttlSeconds: 2, user: 'ci', password: SECRET })
    try {
      for (let round = 0; round < 10; round++) {
        await store.write(entry as never)
        expect((await store.list()).length).toBe(1)
      }
    } finally {
      await store.close()
    }
  })

  it('outside its prefix the restricted user gets E_PERM (access denied), and a wrong password E_PERM (login refused), neither message showing a password', async () => {
    const outside = await runCli(['ls', '--json', '--store', `etcd://${etcd.endpoint}/other`], { env: { WSREG_ETCD_USER: 'ci', WSREG_ETCD_PASSWORD: SECRET } })
    expect(outside.code).toBe(1)
    expect(outside.stderr).toMatch(/etcd at etcd:\/\/127\.0\.0\.1:\d+\/other denied access .*role must grant readwrite/)
    const wrong = await runCli(['ls', '--store', `etcd://${etcd.endpoint}/team`], { env: { WSREG_ETCD_USER: 'ci', WSREG_ETCD_PASSWORD: `${SECRET}x` } })
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/refused the login .*WSREG_ETCD_USER/)
    const store = await EtcdStore.connect({ url: `etcd://${etcd.endpoint}/other`, user: 'ci', password: SECRET })
    try {
      expect((await failure(store.list())).code).toBe('E_PERM')
    } finally {
      await store.close()
    }
    expect(outside.stdout + outside.stderr + wrong.stdout + wrong.stderr).not.toContain(SECRET)
  })
})
