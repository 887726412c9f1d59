import { hostname } from 'node:os'
import type { EtcdStore } from '../fleet/etcd.js'
import { hasPassword } from '../fleet/address.js'
import { EXIT, UsageError, expectPositionals, reportWatchError, type Command, type CommandContext, type Options } from './command.js'
import { entryTable, inline, printJson } from './output.js'

export { redactStoreUrl } from '../fleet/address.js'

/** Options every fleet command takes. */
const FLEET_OPTIONS = {
  host: { type: 'string', value: 'NAME', help: 'The name this machine publishes under (default: its hostname).', example: 'wsreg publish --to etcd://etcd.internal:2379/team --host laptop' },
  ttl: { type: 'string', value: 'SECONDS', help: "The lease: other hosts drop this machine's entries SECONDS after it stops renewing (default 10).", example: 'wsreg publish --to etcd://etcd.internal:2379/team --ttl 30' },
} as const satisfies Options

/** The store named by `--store` or `$WSREG_STORE`, or undefined for the local folder. */
export function storeUrl(context: CommandContext): string | undefined {
  const value = context.values.store ?? process.env.WSREG_STORE
  if (typeof value !== 'string' || value === '') return undefined
  if (context.values.store !== undefined) refusePasswordInArgs('--store', value)
  return value
}

/** A password on the command line is readable by every user through ps: take it only from the environment or a file. */
function refusePasswordInArgs(option: string, url: string): void {
  if (!hasPassword(url)) return
  throw new UsageError(`${option} must not carry a password (anyone can read it with ps): put the URL in WSREG_STORE, or set WSREG_ETCD_USER with WSREG_ETCD_PASSWORD or WSREG_ETCD_PASSWORD_FILE.`)
}

function ttl(context: CommandContext): number | undefined {
  const value = context.values.ttl
  if (value === undefined) return undefined
  if (typeof value !== 'string' || !/^\d+$/.test(value) || Number(value) < 1) {
    throw new UsageError(`--ttl takes whole seconds ≥ 1, such as --ttl 10 (got ${JSON.stringify(value)}).`)
  }
  return Number(value)
}

function host(context: CommandContext): string {
  return typeof context.values.host === 'string' ? context.values.host : hostname()
}

/**
 * grpc-js sends an IP address as the TLS server name, which Node flags once per process (DEP0123)
 * on stderr. The certificate is still checked against the address; the CLI's stderr is for the user.
 */
function quietIpServerName(): void {
  const emit = process.emitWarning
  process.emitWarning = ((...args: unknown[]) => {
    if (args[2] === 'DEP0123' || (args[1] as { code?: string } | undefined)?.code === 'DEP0123') return
    emit.apply(process, args as never)
  }) as typeof process.emitWarning
}

async function openStore(context: CommandContext, url: string): Promise<EtcdStore> {
  if (url.startsWith('etcds:')) quietIpServerName()
  const { EtcdStore } = await import('../fleet/etcd.js')
  const registry = await context.registry()
  return EtcdStore.connect({ url, app: registry.app, host: host(context), ttlSeconds: ttl(context) })
}

/** `wsreg ls --store etcd://…`: the whole fleet, with a HOST column. */
export async function fleetLs(context: CommandContext, url: string): Promise<number> {
  const store = await openStore(context, url)
  try {
    const registry = await context.registry()
    const rows = await store.listInfo({ localHost: store.host, marker: registry.marker, all: Boolean(context.values.all) })
    if (context.json) printJson(context.output, rows)
    else if (rows.length === 0) context.output.err.write(`No workspaces in ${store.location}\n`)
    else context.output.out.write(`${entryTable(rows, context.output, { host: true })}\n`)
    return EXIT.ok
  } finally {
    await store.close()
  }
}

/** `wsreg watch --store etcd://…`: fleet events, one line (or JSON object) each. */
export async function fleetWatch(context: CommandContext, url: string, print: (event: import('../index.js').RegistryEvent) => void, intervalMs?: number): Promise<number> {
  const store = await openStore(context, url)
  const registry = await context.registry()
  const watcher = store.watch({ localHost: store.host, marker: registry.marker, intervalMs })
  watcher.on('reconnect', (info) => {
    const seconds = (info.downMs / 1000).toFixed(1)
    context.output.err.write(`wsreg: fleet watch reconnected to etcd at ${info.location} after ${seconds} s; re-listed ${info.entries} entries\n`)
  })
  const close = (): void => void watcher.close()
  process.once('SIGINT', close)
  process.once('SIGTERM', close)
  context.output.out.once('error', close)
  try {
    for await (const event of watcher) {
      if (event.type === 'error') reportWatchError(context.output, context.json, event.error)
      else print(event)
    }
  } finally {
    process.off('SIGINT', close)
    process.off('SIGTERM', close)
    await store.close({ revoke: false })
  }
  return EXIT.ok
}

/** `wsreg publish`: mirror this machine's registry into etcd until interrupted. */
export const publish: Command = {
  usage: 'wsreg publish --to etcd[s]://HOST[:PORT][/prefix] [--host NAME] [--ttl SECONDS] [--interval MS]',
  summary: "mirror this machine's registry into etcd, so `wsreg ls --store` shows it fleet-wide",
  options: {
    to: { type: 'string', value: 'URL', help: 'The etcd to publish to (default: $WSREG_STORE); a password goes in the environment, never here.', example: 'wsreg publish --to etcds://etcd.internal:2379/team' },
    host: FLEET_OPTIONS.host,
    ttl: FLEET_OPTIONS.ttl,
    interval: { type: 'string', value: 'MS', help: 'Re-check the local registry every MS milliseconds (default 2000).', example: 'wsreg publish --to etcd://etcd.internal:2379/team --interval 1000' },
  },
  async run(context) {
    expectPositionals(context, 0, 0, publish.usage)
    const url = typeof context.values.to === 'string' ? context.values.to : process.env.WSREG_STORE
    if (!url) throw new UsageError(`Name the etcd to publish to: --to etcd://HOST[:PORT]. Usage: ${publish.usage}`)
    if (typeof context.values.to === 'string') refusePasswordInArgs('--to', url)
    const interval = context.values.interval
    if (interval !== undefined && (typeof interval !== 'string' || !/^\d+$/.test(interval) || Number(interval) < 1)) {
      throw new UsageError(`--interval takes a whole number of milliseconds ≥ 1 (got ${JSON.stringify(interval)}).`)
    }
    const registry = await context.registry()
    if (url.startsWith('etcds:')) quietIpServerName()
    const { publish: start } = await import('../fleet/publish.js')
    const log = (line: string): void => void context.output.err.write(`${inline(line)}\n`)
    const publisher = await start(registry, { url, app: registry.app, host: host(context), ttlSeconds: ttl(context), intervalMs: interval === undefined ? undefined : Number(interval), log })
    log(`wsreg publish: publishing ${registry.dir} as host ${publisher.store.host} to ${publisher.store.location} (lease ${publisher.store.ttlSeconds} s); Ctrl-C to stop`)
    void publisher.synced.then(() => log('wsreg publish: in sync'))
    const stop = (): void => void publisher.close()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    const error = await publisher.stopped
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    if (error) throw error
    return EXIT.ok
  },
}
