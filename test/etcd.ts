import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
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
  /** Stop and delete the data folder. */
  destroy(): Promise<void>
}

export async function startEtcd(): Promise<TestEtcd> {
  const data = mkdtempSync(join(tmpdir(), 'wsreg-etcd-'))
  const client = await freePort()
  const peer = await freePort()
  const endpoint = `127.0.0.1:${client}`
  let child: ChildProcess | undefined
  let log = ''
  const start = async (): Promise<void> => {
    log = ''
    child = spawn(ETCD_BINARY, [
      '--name', 'test',
      '--data-dir', join(data, 'data'),
      '--listen-client-urls', `http://${endpoint}`,
      '--advertise-client-urls', `http://${endpoint}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `test=http://127.0.0.1:${peer}`,
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log = (log + chunk).slice(-4000)))
    const running = child
    await waitFor(async () => {
      if (running.exitCode !== null) throw new Error(`etcd exited early:\n${log}`)
      try {
        const response = await fetch(`http://${endpoint}/health`)
        return ((await response.json()) as { health?: string }).health === 'true'
      } catch {
        return false
      }
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
    destroy: async () => {
      await stop()
      rmSync(data, { recursive: true, force: true })
    },
  }
}
