import { statSync } from 'node:fs'
import type { EntryInfo } from '../registry.js'
import { classify } from '../status.js'
import { EXIT, UsageError, expectPositionals, notFound, reportError, type Command } from './command.js'
import { liveEntries, looksLikePath, resolveRef } from './ref.js'
import { entryTable, formatUptime, inline, printJson, statusWord } from './output.js'

const STATUSES = ['alive', 'idle', 'orphan', 'unknown', 'dead', 'gone', 'corrupt']

/** `--status alive,orphan`: the statuses to keep (undefined: all), each checked against the truth table's words. */
function parseStatuses(value: unknown): Set<string> | undefined {
  if (value === undefined) return undefined
  const words = String(value).split(',').map((word) => word.trim()).filter(Boolean)
  const wrong = words.filter((word) => !STATUSES.includes(word))
  if (words.length === 0 || wrong.length > 0) throw new UsageError(`--status takes a comma-separated list of ${STATUSES.join(', ')} (got ${JSON.stringify(value)}), such as --status alive,orphan.`)
  return new Set(words)
}

/** `wsreg ls`: the workspaces, as a table or JSON. */
export const ls: Command = {
  usage: 'wsreg ls [--all] [--probe] [--no-prune] [--status S,…] [--all-apps] [-q] [--no-headers] [-o wide] [--json] [--watch [--interval MS]] [--store etcd[s]://HOST[:PORT][/prefix] [--host NAME]]',
  summary: 'list workspaces (dead ones are pruned as they are seen); -o wide adds ID (and HOST), -q prints ids only',
  options: {
    all: { type: 'boolean', short: 'a', help: 'Also show dead, gone and corrupt entries (dead ones are still pruned unless --no-prune).', example: 'wsreg ls --all' },
    probe: { type: 'boolean', help: "Check each workspace's url and add a HEALTH column (up or down).", example: 'wsreg ls --probe' },
    'no-prune': { type: 'boolean', help: 'Leave dead entries on disk instead of deleting them as they are seen.', example: 'wsreg ls --no-prune --all' },
    status: { type: 'string', value: 'S,…', help: 'Only rows with these statuses (alive, idle, orphan, unknown, dead, gone, corrupt); dead, gone or corrupt imply --all.', example: 'wsreg ls --status alive,orphan' },
    'all-apps': { type: 'boolean', help: "Every app's registry under the state folder, with an APP column (and app in --json rows).", example: 'wsreg ls --all-apps -o wide' },
    quiet: { type: 'boolean', short: 'q', help: 'Print only the ids, one per line (nothing when empty), for xargs.', example: 'wsreg ls --quiet --status orphan | xargs -n1 wsreg reap --group' },
    'no-headers': { type: 'boolean', help: 'Leave out the header line of the table.', example: 'wsreg ls --no-headers' },
    output: { type: 'string', short: 'o', value: 'wide', help: 'Wide output (the only choice): adds an ID column, and HOST when rows come from several hosts.', example: 'wsreg ls --output wide' },
    watch: { type: 'boolean', short: 'w', help: 'Redraw the table whenever a workspace changes, until Ctrl-C.', example: 'wsreg ls --watch' },
    interval: { type: 'string', value: 'MS', help: 'With --watch: re-check every owner every MS milliseconds (default 2000).', example: 'wsreg ls --watch --interval 500' },
    store: { type: 'string', value: 'URL', help: 'List the whole fleet from etcd (default: $WSREG_STORE), with a HOST column.', example: 'wsreg ls --store etcd://etcd.internal:2379/team' },
    host: { type: 'string', value: 'NAME', help: 'With --store: the name of this machine in the fleet (default: its hostname).', example: 'wsreg ls --store etcd://etcd.internal:2379/team --host laptop' },
  },
  async run(context) {
    expectPositionals(context, 0, 0, ls.usage)
    const { values } = context
    if (values.interval !== undefined && !values.watch) throw new UsageError('--interval applies to --watch: wsreg ls --watch --interval MS.')
    if (values.output !== undefined && values.output !== 'wide') throw new UsageError(`-o takes wide (got ${JSON.stringify(values.output)}): wsreg ls -o wide`)
    if (values.quiet && context.json) throw new UsageError('-q prints ids and --json prints entries: choose one.')
    const statuses = parseStatuses(values.status)
    const allApps = Boolean(values['all-apps'])
    const fleet = await import('./fleet.js').then((module) => ({ module, url: module.storeUrl(context) }))
    if (allApps && (fleet.url || values.watch || values.dir !== undefined || values.app !== undefined)) {
      throw new UsageError('--all-apps lists every app under the state folder: drop --dir, --app, --watch and --store.')
    }
    if (fleet.url && values.watch) throw new UsageError('ls --watch shows this machine only; for the fleet run `wsreg watch --store URL`.')
    if (fleet.url) return fleet.module.fleetLs(context, fleet.url)
    if (values.watch) return (await import('./watch.js')).watchTable(context)
    const options = {
      // Dead, gone and corrupt rows only show with --all: asking for one of them by status asks for them.
      all: Boolean(values.all) || (statuses !== undefined && ['dead', 'gone', 'corrupt'].some((status) => statuses.has(status))),
      probe: Boolean(values.probe),
      prune: !values['no-prune'],
    }
    let rows: Array<EntryInfo & { app?: string }>
    let where: string
    let failed = false
    if (allApps) {
      const all = await (await import('./apps.js')).allAppsRows(options, (app, error) => {
        failed = true
        reportError(context.output, context.json, error.code, `${app}: ${context.json ? error.message : inline(error.message)}`)
      })
      rows = all.rows
      where = `any app under ${all.state}`
    } else {
      const registry = await context.registry()
      rows = await registry.listInfo(options)
      where = registry.dir
    }
    if (statuses) rows = rows.filter((row) => statuses.has(row.status))
    if (values.quiet) {
      for (const row of rows) context.output.out.write(`${row.id}\n`)
    } else if (context.json) {
      printJson(context.output, rows)
    } else if (rows.length === 0) {
      context.output.err.write(`No workspaces${statuses ? ` with status ${[...statuses].join(' or ')}` : ''} in ${where}\n`)
    } else {
      const wide = values.output === 'wide'
      const hosts = new Set(rows.map((row) => (row.status === 'corrupt' ? undefined : row.host)).filter(Boolean))
      const text = entryTable(rows, context.output, { health: options.probe, id: wide, host: wide && hosts.size > 1, app: allApps })
      context.output.out.write(`${values['no-headers'] ? text.slice(text.indexOf('\n') + 1) : text}\n`)
    }
    return failed ? EXIT.failure : EXIT.ok
  },
}

/** `wsreg show`: one workspace. */
export const show: Command = {
  usage: 'wsreg show <id|cwd|name> [--json]',
  summary: 'show one workspace entry',
  async run(context) {
    expectPositionals(context, 1, 1, show.usage)
    const registry = await context.registry()
    const entry = await resolveRef(context.positionals[0] as string, liveEntries(registry))
    if (!entry) return (await import('./history.js')).notFoundWithEnd(context, registry, context.positionals[0] as string)
    const verdict = classify(entry, { marker: registry.marker })
    const file = registry.entryPath(entry.cwd)
    const row = { ...entry, status: verdict.status, reason: verdict.reason, path: file, mtime: mtimeOf(file) } as EntryInfo
    if (context.json) {
      printJson(context.output, row)
      return EXIT.ok
    }
    const lines: Array<[string, string]> = [
      ['name', entry.name],
      ['status', statusWord(context.output, verdict.status) + (verdict.reason ? ` (${verdict.reason})` : '')],
      ['cwd', entry.cwd],
      ['id', entry.id],
      ['pid', String(entry.pid)],
      ['uptime', entry.pid === 0 ? '-' : formatUptime(entry.startedAt)],
      ['url', entry.url ?? '-'],
      ['host', entry.host],
      ['started', entry.startedAt],
      ['updated', entry.updatedAt],
      ['file', registry.entryPath(entry.cwd)],
    ]
    if (entry.meta) lines.push(['meta', JSON.stringify(entry.meta)])
    context.output.out.write(lines.map(([key, value]) => `${key.padEnd(8)} ${inline(value)}`).join('\n') + '\n')
    return EXIT.ok
  },
}

/** `wsreg path`: the registry folder, or the entry file of a workspace. */
export const path: Command = {
  usage: 'wsreg path [id|cwd|name]',
  summary: 'print the registry folder, or the entry file of a workspace (the one it would have, for an unregistered folder)',
  async run(context) {
    expectPositionals(context, 0, 1, path.usage)
    const registry = await context.registry()
    const ref = context.positionals[0]
    let result = registry.dir
    if (ref !== undefined) {
      const entry = await resolveRef(ref, liveEntries(registry))
      if (entry) result = registry.entryPath(entry.cwd)
      else if (looksLikePath(ref)) result = registry.entryPath(ref)
      else return notFound(context, registry, ref)
    }
    if (context.json) printJson(context.output, result)
    else context.output.out.write(`${result}\n`)
    return EXIT.ok
  },
}

/** When an entry file was last written (ISO-8601), or null when it cannot be read (a legacy file name, a race). */
function mtimeOf(file: string): string | null {
  try {
    return statSync(file).mtime.toISOString()
  } catch {
    return null
  }
}
