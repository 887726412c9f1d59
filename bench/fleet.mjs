// Fleet benchmark (issue 8): listing 10,000 entries from etcd next to listing them from the folder,
// and event latency from a write on one host to the event on another (through the publishing agent
// and etcd) next to the folder watcher's; both again over TLS (etcds://, certificates made with
// openssl). Run `npm run bench:fleet` (builds first; needs /usr/bin/etcd and openssl).
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry, serializeEntry, workspaceId } from '../dist/index.js'
import { EtcdStore, publish } from '../dist/fleet/index.js'

const ETCD = process.env.WSREG_TEST_ETCD ?? '/usr/bin/etcd'
const COUNT = 10_000
const SAMPLES = 100
const RUNS = 5

if (!existsSync(ETCD)) {
  console.error(`bench:fleet needs etcd at ${ETCD} (apt-get install etcd-server)`)
  process.exit(1)
}

const root = mkdtempSync(join(tmpdir(), 'wsreg-bench-fleet-'))
const etcd = await startEtcd(join(root, 'etcd'))
const certs = makeCertificates(join(root, 'certs'))
const secure = await startEtcd(join(root, 'etcd-tls'), certs)
try {
  const url = `etcd://${etcd.endpoint}/bench`
  const rows = []

  // Listing: the same 10,000 live entries in a folder and in etcd.
  const registry = await populate(join(root, 'list'), COUNT)
  const store = await EtcdStore.connect({ url, host: 'alpha', ttlSeconds: 30 })
  const entries = await registry.list({ prune: false })
  for (let i = 0; i < entries.length; i += 200) await Promise.all(entries.slice(i, i + 200).map((entry) => store.write(entry)))
  const observer = await EtcdStore.connect({ url, host: 'observer' })
  rows.push(['list 10,000 — folder, registry.list()', await timeMedian(() => registry.list({ prune: false }), COUNT)])
  rows.push(['list 10,000 — etcd, store.list() (raw, parsed)', await timeMedian(() => observer.list(), COUNT)])
  rows.push(['list 10,000 — etcd, store.listInfo() (judged, as `wsreg ls --store`)', await timeMedian(() => observer.listInfo(), COUNT)])
  await store.close()

  // The same listing over TLS.
  const tlsUrl = `etcds://${secure.endpoint}/bench`
  const tlsStore = await EtcdStore.connect({ url: tlsUrl, host: 'alpha', ttlSeconds: 30, ca: certs.ca })
  for (let i = 0; i < entries.length; i += 200) await Promise.all(entries.slice(i, i + 200).map((entry) => tlsStore.write(entry)))
  const tlsObserver = await EtcdStore.connect({ url: tlsUrl, host: 'observer', ca: certs.ca })
  rows.push(['list 10,000 — etcds (TLS), store.list() (raw, parsed)', await timeMedian(() => tlsObserver.list(), COUNT)])
  rows.push(['list 10,000 — etcds (TLS), store.listInfo() (judged)', await timeMedian(() => tlsObserver.listInfo(), COUNT)])
  await tlsStore.close()
  await tlsObserver.close()

  // Latency: write on host alpha (its folder, its agent) → event on a fleet watcher elsewhere.
  const alpha = new Registry({ dir: join(root, 'alpha', 'registry') })
  mkdirSync(join(root, 'alpha', 'ws'), { recursive: true })
  const agent = await publish(alpha, { url: `etcd://${etcd.endpoint}/latency`, host: 'alpha', ttlSeconds: 10, log: () => undefined })
  await agent.synced
  const fleetStore = await EtcdStore.connect({ url: `etcd://${etcd.endpoint}/latency`, host: 'observer' })
  const fleetWatcher = fleetStore.watch()
  await new Promise((resolve) => fleetWatcher.once('ready', resolve))
  const fleetUp = await latency(alpha, join(root, 'alpha', 'ws'), fleetWatcher)
  await fleetWatcher.close()
  await fleetStore.close()
  await agent.close()
  const tlsAgent = await publish(alpha, { url: `etcds://${secure.endpoint}/latency`, host: 'alpha', ttlSeconds: 10, ca: certs.ca, log: () => undefined })
  await tlsAgent.synced
  const tlsFleetStore = await EtcdStore.connect({ url: `etcds://${secure.endpoint}/latency`, host: 'observer', ca: certs.ca })
  const tlsFleetWatcher = tlsFleetStore.watch()
  await new Promise((resolve) => tlsFleetWatcher.once('ready', resolve))
  const tlsUp = await latency(alpha, join(root, 'alpha', 'ws'), tlsFleetWatcher)
  await tlsFleetWatcher.close()
  await tlsFleetStore.close()
  await tlsAgent.close()
  const localWatcher = alpha.watch()
  await new Promise((resolve) => localWatcher.once('ready', resolve))
  const localUp = await latency(alpha, join(root, 'alpha', 'ws'), localWatcher)
  await localWatcher.close()
  await observer.close()

  console.log(`\nListing (${COUNT.toLocaleString('en')} entries, median of ${RUNS}):`)
  for (const [name, ms] of rows) console.log(`  ${name.padEnd(70)} ${ms.toFixed(1)} ms`)
  console.log(`\nEvent latency, write returned → event (${SAMPLES} up + ${SAMPLES} down):`)
  console.log(`  ${'folder watcher, same host'.padEnd(48)} p50 ${localUp.p50.toFixed(2)} ms  p99 ${localUp.p99.toFixed(2)} ms`)
  console.log(`  ${'fleet watcher, other host (agent → etcd → watch)'.padEnd(48)} p50 ${fleetUp.p50.toFixed(2)} ms  p99 ${fleetUp.p99.toFixed(2)} ms`)
  console.log(`  ${'fleet watcher over TLS (agent → etcds → watch)'.padEnd(48)} p50 ${tlsUp.p50.toFixed(2)} ms  p99 ${tlsUp.p99.toFixed(2)} ms`)
} finally {
  await etcd.stop()
  await secure.stop()
  rmSync(root, { recursive: true, force: true })
}
process.exit(0)

async function populate(dir, count) {
  const registry = new Registry({ dir: join(dir, 'registry') })
  mkdirSync(join(dir, 'ws'), { recursive: true })
  const template = await registry.write({ cwd: join(dir, 'ws') })
  for (let i = 0; i < count - 1; i++) {
    const cwd = join(dir, 'ws', String(i))
    mkdirSync(cwd)
    const entry = { ...template, id: workspaceId(cwd), cwd, name: `ws-${i}` }
    writeFileSync(join(registry.dir, `${entry.id}.json`), serializeEntry(entry), { mode: 0o600 })
  }
  return registry
}

async function timeMedian(run, expected) {
  const times = []
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now()
    const result = await run()
    times.push(performance.now() - start)
    if (result.length !== expected) throw new Error(`expected ${expected} rows, got ${result.length}`)
  }
  return percentile(times, 50)
}

/** Up and down events for one workspace that comes and goes: write/remove on `registry`, event on `watcher`. */
async function latency(registry, base, watcher) {
  const samples = []
  const cwd = join(base, `probe-${Math.random().toString(16).slice(2)}`)
  mkdirSync(cwd)
  for (let i = 0; i < SAMPLES; i++) {
    for (const [kind, act] of [['up', () => registry.write({ cwd, name: `probe-${i}` })], ['down', () => registry.remove(cwd)]]) {
      const seen = new Promise((resolve) => watcher.once(kind, () => resolve(performance.now())))
      await act()
      const done = performance.now()
      samples.push((await seen) - done)
    }
  }
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) }
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
}

async function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** A throwaway CA and a server certificate for 127.0.0.1 (EC P-256), made with openssl. */
function makeCertificates(dir) {
  mkdirSync(dir)
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  const openssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' })
  openssl('req', '-x509', ...key, '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-days', '1', '-subj', '/CN=bench CA')
  openssl('req', ...key, '-keyout', join(dir, 'server.key'), '-out', join(dir, 'server.csr'), '-subj', '/CN=127.0.0.1')
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\n')
  openssl('x509', '-req', '-in', join(dir, 'server.csr'), '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', join(dir, 'server.crt'), '-days', '1', '-extfile', join(dir, 'server.ext'))
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') }
}

function healthy(endpoint, certs) {
  if (!certs) return fetch(`http://${endpoint}/health`).then((response) => response.json()).then((body) => body.health === 'true', () => false)
  const [host, port] = endpoint.split(':')
  return new Promise((resolve) => {
    request({ host, port: Number(port), path: '/health', ca: readFileSync(certs.ca) }, (response) => {
      let text = ''
      response.setEncoding('utf8').on('data', (chunk) => (text += chunk)).on('end', () => resolve(text.includes('"health":"true"')))
    }).on('error', () => resolve(false)).end()
  })
}

async function startEtcd(data, certs) {
  const client = await freePort()
  const peer = await freePort()
  const endpoint = `127.0.0.1:${client}`
  const scheme = certs ? 'https' : 'http'
  const tls = certs ? ['--cert-file', certs.cert, '--key-file', certs.key] : []
  const child = spawn(ETCD, ['--name', 'bench', '--data-dir', data, '--listen-client-urls', `${scheme}://${endpoint}`, '--advertise-client-urls', `${scheme}://${endpoint}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`, '--initial-cluster', `bench=http://127.0.0.1:${peer}`, ...tls], { stdio: 'ignore' })
  while (!(await healthy(endpoint, certs))) await new Promise((resolve) => setTimeout(resolve, 50))
  return { endpoint, stop: () => new Promise((resolve) => { child.once('exit', resolve); child.kill('SIGTERM') }) }
}
