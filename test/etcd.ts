import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exited, waitFor } from './helpers.js'

/** Debian's etcd-server; the fleet tests skip (and say why in their name) without it. */
export const ETCD_BINARY = process.env.WSREG_TEST_ETCD ?? '/usr/bin/etcd'
export const HAVE_ETCD = existsSync(ETCD_BINARY)

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })
}

/** A real single-node etcd on random loopback ports with a temp data folder; stop and start keep the data. */
export interface TestEtcd {
  /** `127.0.0.1:PORT`. */
  endpoint: string
  start(): Promise<void>
  stop(): Promise<void>
  /** Freeze etcd (SIGSTOP): connections stay open and nothing answers, as in a partition. */
  pause(): void
  /** Thaw it (SIGCONT). */
  resume(): void
  /** Stop and delete the data folder. */
  destroy(): Promise<void>
}

/** PEM files made with openssl: a CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
export interface Certificates {
  dir: string
  ca: string
  serverCert: string
  serverKey: string
  clientCert: string
  clientKey: string
}

/** Make a throwaway CA and certificates (EC P-256, valid one day) with the openssl binary. */
export function makeCertificates(): Certificates {
  const dir = mkdtempSync(join(tmpdir(), 'wsreg-certs-'))
  const file = (name: string): string => join(dir, name)
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'pipe' })
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...key, '-keyout', file('ca.key'), '-out', file('ca.crt'), '-days', '1', '-subj', '/CN=wsreg test CA')
  const sign = (name: string, subject: string, extensions: string): void => {
    openssl('req', ...key, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', subject)
    writeFileSync(file(`${name}.ext`), extensions)
    openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file(`${name}.crt`), '-days', '1', '-extfile', file(`${name}.ext`))
  }
  sign('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n')
  sign('client', '/CN=wsreg-client', 'extendedKeyUsage=clientAuth\n')
  return { dir, ca: file('ca.crt'), serverCert: file('server.crt'), serverKey: file('server.key'), clientCert: file('client.crt'), clientKey: file('client.key') }
}

/** Options of {@link startEtcd}. */
export interface EtcdOptions {
  /** Serve clients over TLS with these certificates. */
  tls?: Certificates
  /**
   * With `tls`: require a client certificate signed by the CA.
   * @default true
   */
  clientCertAuth?: boolean
}

async function healthy(endpoint: string, tls: Certificates | undefined): Promise<boolean> {
  try {
    if (!tls) return ((await (await fetch(`http://${endpoint}/health`)).json()) as { health?: string }).health === 'true'
    const body = await new Promise<string>((resolve, reject) => {
      const [host, port] = endpoint.split(':')
      const options = { host, port: Number(port), path: '/health', ca: readFileSync(tls.ca), cert: readFileSync(tls.clientCert), key: readFileSync(tls.clientKey) }
      request(options, (response) => {
        let text = ''
        response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(text))
      }).on('error', reject).end()
    })
    return (JSON.parse(body) as { health?: string }).health === 'true'
  } catch {
    return false
  }
}

export async function startEtcd(options: EtcdOptions = {}): Promise<TestEtcd> {
  const data = mkdtempSync(join(tmpdir(), 'wsreg-etcd-'))
  const client = await freePort()
  const peer = await freePort()
  const endpoint = `127.0.0.1:${client}`
  const scheme = options.tls ? 'https' : 'http'
  // etcd checks client certificates whenever it is given a CA to check them with.
  const clientCerts = options.tls && options.clientCertAuth !== false ? ['--trusted-ca-file', options.tls.ca, '--client-cert-auth'] : []
  const tlsFlags = options.tls ? ['--cert-file', options.tls.serverCert, '--key-file', options.tls.serverKey, ...clientCerts] : []
  let child: ChildProcess | undefined
  let log = ''
  const start = async (): Promise<void> => {
    log = ''
    child = spawn(ETCD_BINARY, [
      '--name', 'test',
      '--data-dir', join(data, 'data'),
      '--listen-client-urls', `${scheme}://${endpoint}`,
      '--advertise-client-urls', `${scheme}://${endpoint}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `test=http://127.0.0.1:${peer}`,
      ...tlsFlags,
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log = (log + chunk).slice(-4000)))
    const running = child
    await waitFor(async () => {
      if (running.exitCode !== null) throw new Error(`etcd exited early:\n${log}`)
      return healthy(endpoint, options.tls)
    }, 20_000, 'etcd to become healthy')
  }
  const stop = async (): Promise<void> => {
    const running = child
    child = undefined
    if (!running || running.exitCode !== null || running.signalCode !== null) return
    running.kill('SIGTERM')
    await exited(running)
  }
  await start()
  return {
    endpoint,
    start,
    stop,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    destroy: async () => {
      await stop()
      rmSync(data, { recursive: true, force: true })
    },
  }
}

/** Enable auth on `etcd`: a root user, and user `user` whose role may read and write only keys under `prefix`. */
export async function enableAuth(etcd: TestEtcd, access: { rootPassword: string; user: string; password: string; prefix: string; tls?: Certificates }): Promise<void> {
  const { Etcd3 } = await import('etcd3')
  const admin = new Etcd3({ hosts: `${access.tls ? 'https' : 'http'}://${etcd.endpoint}`, ...(access.tls ? { credentials: { rootCertificate: readFileSync(access.tls.ca) } } : {}) })
  try {
    await admin.role('root').create()
    await (await admin.user('root').create(access.rootPassword)).addRole('root')
    const role = await admin.role(`${access.user}-role`).create()
    await role.grant({ permission: 'Readwrite', range: admin.range({ prefix: access.prefix }) })
    await (await admin.user(access.user).create(access.password)).addRole(role)
    await admin.auth.authEnable()
  } finally {
    admin.close()
  }
}
