import type { Entry, RegistryEvent, RegistryWatcher } from '../index.js'
import { EXIT, UsageError, expectPositionals, reportWatchError, type Command, type CommandContext } from './command.js'
import { CLEAR_SCREEN, entryTable, inline, json, paint, statusWord, type Output } from './output.js'

/** `wsreg watch`: one line per event until interrupted. */
export const watch: Command = {
  usage: 'wsreg watch [--json] [--interval MS] [--store etcd[s]://HOST[:PORT][/prefix] [--host NAME]]',
  summary: 'print workspaces going up, down and changing, one line per event, until Ctrl-C',
  options: {
    interval: { type: 'string', value: 'MS', help: 'Re-check every owner every MS milliseconds, which catches SIGKILLed ones (default 2000).', example: 'wsreg watch --interval 500' },
    store: { type: 'string', value: 'URL', help: 'Watch the whole fleet in etcd (default: $WSREG_STORE).', example: 'wsreg watch --store etcd://etcd.internal:2379/team' },
    host: { type: 'string', value: 'NAME', help: 'With --store: the name of this machine in the fleet (default: its hostname).', example: 'wsreg watch --store etcd://etcd.internal:2379/team --host laptop' },
  },
  async run(context) {
    expectPositionals(context, 0, 0, watch.usage)
    const intervalMs = parseInterval(context.values.interval)
    const fleet = await import('./fleet.js')
    const url = fleet.storeUrl(context)
    if (url) {
      return fleet.fleetWatch(context, url, (event) => context.output.out.write(context.json ? `${eventJson(event)}\n` : `${describe(event as Exclude<RegistryEvent, { type: 'error' }>, context.output, fleet.redactStoreUrl(url))}\n`), intervalMs)
    }
    const registry = await context.registry()
    const watcher = registry.watch({ intervalMs })
    const stop = closeOnSignals(watcher, context.output)
    try {
      for await (const event of watcher) {
        if (event.type === 'error') reportWatchError(context.output, context.json, event.error)
        else context.output.out.write(context.json ? `${eventJson(event)}\n` : `${describe(event, context.output, registry.dir)}\n`)
      }
    } finally {
      stop()
    }
    return EXIT.ok
  },
}

/** One NDJSON line of `watch --json`: the event with `at`, when it was seen (ISO-8601), right after its type. */
function eventJson(event: object & { type: string }): string {
  const { type, ...rest } = event
  return json({ type, at: new Date().toISOString(), ...rest })
}

/** `wsreg ls --watch`: the `ls` table, redrawn whenever a workspace changes. */
export async function watchTable(context: CommandContext): Promise<number> {
  const registry = await context.registry()
  const { output } = context
  const terminal = Boolean(output.out.isTTY) && !context.json
  const watcher = registry.watch({ intervalMs: parseInterval(context.values.interval) })
  const stop = closeOnSignals(watcher, output)
  let drawing: Promise<void> | undefined
  let again = false
  const draw = async (): Promise<void> => {
    const rows = await registry.listInfo({ all: Boolean(context.values.all), probe: Boolean(context.values.probe), prune: !context.values['no-prune'] })
    let frame: string
    if (context.json) frame = json(rows)
    else frame = rows.length === 0 ? `No workspaces in ${registry.dir}` : entryTable(rows, output, { health: Boolean(context.values.probe) })
    // On a terminal, home the cursor and clear, so the table redraws in place; elsewhere frames follow each other.
    if (terminal) output.out.write(`${CLEAR_SCREEN}${frame}\n\n${paint(output, 'dim', `watching ${registry.dir} · Ctrl-C to quit`)}\n`)
    else output.out.write(`${frame}\n${context.json ? '' : '\n'}`)
  }
  const redraw = (): void => {
    if (drawing) {
      again = true
      return
    }
    drawing = draw()
      .catch((error: Error) => reportWatchError(output, context.json, error))
      .finally(() => {
        drawing = undefined
        if (again) {
          again = false
          redraw()
        }
      })
  }
  // Uptimes tick on a terminal even when nothing happens.
  const clock = terminal ? setInterval(redraw, 1000) : undefined
  try {
    for await (const event of watcher) {
      if (event.type === 'error') reportWatchError(output, context.json, event.error)
      else redraw()
    }
    await drawing
  } finally {
    clearInterval(clock)
    stop()
  }
  return EXIT.ok
}

function parseInterval(value: string | boolean | string[] | undefined): number | undefined {
  if (value === undefined) return undefined
  const ms = Number(value)
  if (typeof value !== 'string' || !/^\d+$/.test(value) || ms < 1) {
    throw new UsageError(`--interval takes a whole number of milliseconds ≥ 1, such as --interval 500 (got ${JSON.stringify(value)}).`)
  }
  return ms
}

/** Ctrl-C, SIGTERM or a closed stdout end the watch (exit 0) instead of killing the process mid-line. */
function closeOnSignals(watcher: RegistryWatcher, output: Output): () => void {
  const close = (): void => void watcher.close()
  process.once('SIGINT', close)
  process.once('SIGTERM', close)
  output.out.once('error', close)
  return () => {
    process.off('SIGINT', close)
    process.off('SIGTERM', close)
    output.out.off('error', close)
  }
}

function label(entry: Entry): string {
  return `${inline(entry.name)}  pid ${entry.pid}  ${inline(entry.cwd)}${entry.url ? `  ${inline(entry.url)}` : ''}`
}

/** One human line per event: time, kind, then what changed. */
function describe(event: Exclude<RegistryEvent, { type: 'error' }>, output: Output, dir: string): string {
  const time = paint(output, 'dim', new Date().toISOString().slice(11, 19))
  const kind = (word: string, style: 'green' | 'red' | 'yellow' | 'bold') => paint(output, style, word.padEnd(6))
  switch (event.type) {
    case 'ready':
      return `${time} ${kind('ready', 'bold')} ${event.entries.length} workspace${event.entries.length === 1 ? '' : 's'} in ${dir}`
    case 'up':
      return `${time} ${kind('up', 'green')} ${label(event.entry)}${event.status === 'alive' ? '' : ` (${event.status})`}`
    case 'down':
      return `${time} ${kind('down', 'red')} ${label(event.entry)} (${event.reason})`
    case 'change': {
      const entry = (event.entry ?? event.previous) as Entry
      const status = event.previousStatus === event.status ? '' : `  ${event.previousStatus ? statusWord(output, event.previousStatus) : 'none'} → ${event.status ? statusWord(output, event.status) : 'none'}`
      const fields = event.previous && event.entry ? changedFields(event.previous, event.entry) : []
      return `${time} ${kind('change', 'yellow')} ${label(entry)}${status}${fields.length ? `  changed: ${fields.join(', ')}` : ''}`
    }
  }
}

function changedFields(previous: Entry, entry: Entry): string[] {
  const keys = new Set([...Object.keys(previous), ...Object.keys(entry)])
  keys.delete('updatedAt')
  const a = previous as unknown as Record<string, unknown>
  const b = entry as unknown as Record<string, unknown>
  return [...keys].filter((key) => JSON.stringify(a[key]) !== JSON.stringify(b[key]))
}
