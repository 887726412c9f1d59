import type { HistoryRecord, Registry } from '../index.js'
import { EXIT, UsageError, expectPositionals, reportError, type Command, type CommandContext } from './command.js'
import { formatUptime, inline, printJson, table } from './output.js'
import { resolveRef, type RefSource } from './ref.js'

/** `wsreg history`: when and why workspaces ended (pruned, removed, reaped, released, migrated, quarantined). */
export const history: Command = {
  usage: 'wsreg history [id|cwd|name] [--since 1h|2026-01-31T12:00Z] [--limit N] [--json]',
  summary: 'show when and why workspaces ended, newest first (e.g. wsreg history --since 1h)',
  options: {
    since: { type: 'string', value: 'WHEN', help: 'Only ends after WHEN: a duration back from now (90s, 10m, 2h, 7d) or a date.', example: 'wsreg history --since 2h' },
    limit: { type: 'string', value: 'N', help: 'At most N records, newest first.', example: 'wsreg history --limit 20' },
  },
  async run(context) {
    expectPositionals(context, 0, 1, history.usage)
    const since = parseSince(context.values.since)
    const limit = parseLimit(context.values.limit)
    const registry = await context.registry()
    const ref = context.positionals[0]
    const records = await historyOf(registry, ref, { since, limit })
    if (context.json) {
      printJson(context.output, records)
      return EXIT.ok
    }
    if (records.length === 0) {
      context.output.err.write(`No recorded ends${ref === undefined ? '' : ` of ${inline(ref)}`}${since ? ` since ${since.toISOString()}` : ''} in ${registry.dir}\n`)
      return EXIT.ok
    }
    const now = Date.now()
    const rows = records.map((record) => [
      `${formatUptime(record.at, now)} ago`,
      record.event,
      record.reason === null ? '-' : record.problem ? `${record.reason}: ${record.problem}` : record.reason,
      String(record.by),
      record.pid === null ? '-' : String(record.pid),
      record.name ?? record.id,
      record.cwd ?? (record.to ? `.quarantine/${record.to}` : '-'),
    ])
    context.output.out.write(`${table(['ENDED', 'EVENT', 'REASON', 'BY', 'PID', 'NAME', 'CWD'], rows, context.output)}\n`)
    return EXIT.ok
  },
}

/** Records of the workspace `ref` names (an id, a path, else a name matching one workspace's records), or of all workspaces. */
async function historyOf(registry: Registry, ref: string | undefined, query: { since?: Date; limit?: number }): Promise<HistoryRecord[]> {
  if (ref === undefined) return registry.history(query)
  const found = await resolveRef(ref, ended(registry, query.since))
  return found ? registry.history({ ...query, id: found.id }) : []
}

/** Workspaces that have ended, as refs resolve them: a workspace's latest record stands for it. */
function ended(registry: Registry, since?: Date): RefSource<HistoryRecord> {
  return {
    byId: async (id) => (await registry.history({ id, limit: 1, ...(since ? { since } : {}) }))[0],
    all: () => registry.history(since ? { since } : {}),
  }
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `--since`: a duration back from now (`90s`, `10m`, `2h`, `7d`) or a date (`2026-01-31`, `2026-01-31T12:00:00Z`). */
function parseSince(value: string | boolean | string[] | undefined): Date | undefined {
  if (typeof value !== 'string') return undefined
  const duration = /^([0-9]+)([smhd])$/.exec(value)
  const date = duration ? new Date(Date.now() - Number(duration[1]) * (UNITS[duration[2] as string] as number)) : new Date(value)
  if (!Number.isFinite(date.getTime())) throw new UsageError(`Invalid --since ${JSON.stringify(value)}: pass a duration such as 10m, 2h or 7d, or a date such as 2026-01-31T12:00:00Z.`)
  return date
}

function parseLimit(value: string | boolean | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined
  if (!/^[0-9]+$/.test(value)) throw new UsageError(`Invalid --limit ${JSON.stringify(value)}: pass a whole number such as 20.`)
  return Number(value)
}

/** How a record reads in a sentence: `exited, pruned 2s ago by pid 123`. */
export function endedPhrase(record: HistoryRecord, now = Date.now()): string {
  return `${record.reason ? `${record.reason}, ` : ''}${record.event} ${formatUptime(record.at, now)} ago by pid ${record.by}`
}

/**
 * Say on stderr that `argument` names no workspace, and when the history knows it, when and why it ended; the exit
 * code for it. History is evidence, not a condition: a history that cannot be read leaves the plain message.
 */
export async function notFoundWithEnd(context: CommandContext, registry: Registry, argument: string): Promise<number> {
  let last: HistoryRecord | undefined
  try {
    last = await resolveRef(argument, ended(registry))
  } catch {
    last = undefined
  }
  const message = `No workspace ${argument} in ${registry.dir}${last ? `; it ended: ${endedPhrase(last)} (${last.at})` : ''}`
  reportError(context.output, context.json, 'E_NOT_FOUND', message, last ? { ended: last } : {}, true)
  return EXIT.notFound
}
