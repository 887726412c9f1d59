import type { EntryInfo } from '../registry.js'
import { classify } from '../status.js'
import { EXIT, UsageError, expectPositionals, notFound, type Command } from './command.js'
import { liveEntries, looksLikePath, resolveRef } from './ref.js'
import { entryTable, formatUptime, inline, printJson, statusWord } from './output.js'

/** `wsreg ls`: the workspaces, as a table or JSON. */
export const ls: Command = {
  usage: 'wsreg ls [--all] [--probe] [--no-prune] [--json] [--watch [--interval MS]] [--store etcd[s]://HOST[:PORT][/prefix] [--host NAME]]',
  summary: 'list workspaces (dead ones are pruned as they are seen)',
  options: {
    all: { type: 'boolean', short: 'a' },
    probe: { type: 'boolean' },
    'no-prune': { type: 'boolean' },
    watch: { type: 'boolean', short: 'w' },
    interval: { type: 'string' },
    store: { type: 'string' },
    host: { type: 'string' },
  },
  async run(context) {
    expectPositionals(context, 0, 0, ls.usage)
    const fleet = await import('./fleet.js').then((module) => ({ module, url: module.storeUrl(context) }))
    if (fleet.url && context.values.watch) throw new UsageError('ls --watch shows this machine only; for the fleet run `wsreg watch --store URL`.')
    if (fleet.url) return fleet.module.fleetLs(context, fleet.url)
    if (context.values.watch) return (await import('./watch.js')).watchTable(context)
    const registry = await context.registry()
    const rows = await registry.listInfo({
      all: Boolean(context.values.all),
      probe: Boolean(context.values.probe),
      prune: !context.values['no-prune'],
    })
    if (context.json) {
      printJson(context.output, rows)
    } else if (rows.length === 0) {
      context.output.err.write(`No workspaces in ${registry.dir}\n`)
    } else {
      context.output.out.write(`${entryTable(rows, context.output, { health: Boolean(context.values.probe) })}\n`)
    }
    return EXIT.ok
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
    const row = { ...entry, status: verdict.status, reason: verdict.reason, path: registry.entryPath(entry.cwd) } as EntryInfo
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
