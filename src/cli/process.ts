import { constants } from 'node:os'
import { resolve } from 'node:path'
import { RegistryError, type Claim, type Entry, type ReapResult, type Registry } from '../index.js'
import { EXIT, UsageError, expectPositionals, notFound, reportError, type Command, type CommandContext } from './command.js'
import { liveEntries, resolveRef } from './ref.js'
import { isFolder, signalChild, startChild } from './child.js'
import { entryTable, inline, printJson } from './output.js'

// Signals a wrapper passes on, so the child decides how to end (SIGKILL and SIGSTOP cannot be caught).
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2']

function milliseconds(context: CommandContext, flag: string): number | undefined {
  const value = context.values[flag]
  if (value === undefined) return undefined
  if (typeof value !== 'string' || !/^\d+$/.test(value)) throw new UsageError(`--${flag} takes a whole number of milliseconds, such as --${flag} 2000.`)
  return Number(value)
}

function commandLine(context: CommandContext, usage: string): [string, string[]] {
  const [file, ...args] = context.rest
  if (file === undefined || file === '') throw new UsageError(`Give the command to run after \`--\`. Usage: ${usage}`)
  return [file, args]
}

/** How a supervised child ended: an exit code, or the signal that killed it. */
type Ending = { code: number; signal: NodeJS.Signals | null }

/** Run `file args` without a shell, in a process group of its own, passing signals on to the group, until it ends. */
async function supervise(context: CommandContext, file: string, args: string[], options: { cwd?: string; onSpawn?: (pid: number) => Promise<void> }): Promise<Ending> {
  const child = startChild(file, args, { cwd: options.cwd })
  // The child is not in our group, so a terminal's Ctrl-C reaches only us: forwarding delivers it exactly once.
  const forward = (signal: NodeJS.Signals) => signalChild(child, signal)
  for (const signal of FORWARDED) process.on(signal, forward)
  try {
    const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null } | { error: NodeJS.ErrnoException }>((done) => {
      child.once('error', (error) => done({ error }))
      child.once('exit', (code, signal) => done({ code, signal }))
    })
    if (child.pid !== undefined) await options.onSpawn?.(child.pid)
    const result = await ended
    if ('error' in result) {
      // spawn says ENOENT for a missing folder too: name the one that is missing.
      const missing = result.error.code === 'ENOENT'
      const why = missing && options.cwd !== undefined && !isFolder(options.cwd) ? `the folder ${options.cwd} is gone` : missing ? 'command not found' : result.error.message
      reportError(context.output, context.json, missing ? 'E_COMMAND_NOT_FOUND' : 'E_CANNOT_RUN', `cannot run ${JSON.stringify(file)}: ${why}`)
      return { code: missing ? 127 : 126, signal: null } // the shell's codes for "not found" and "cannot execute"
    }
    if (result.signal) return { code: 128 + (constants.signals[result.signal] ?? 0), signal: result.signal }
    return { code: result.code ?? EXIT.failure, signal: null }
  } finally {
    for (const signal of FORWARDED) process.off(signal, forward)
  }
}

/** `--meta K=V` (repeatable) as an object; a later K wins. */
function parseMeta(value: string | boolean | string[] | undefined): Record<string, string> | undefined {
  if (value === undefined) return undefined
  const meta: Record<string, string> = {}
  for (const pair of Array.isArray(value) ? value : [String(value)]) {
    const at = pair.indexOf('=')
    if (at < 1) throw new UsageError(`--meta takes KEY=VALUE, such as --meta branch=main (got ${JSON.stringify(pair)}).`)
    meta[pair.slice(0, at)] = pair.slice(at + 1)
  }
  return meta
}

/** Take the workspace lock for a command, saying how to wait in that command's own words when it is held. */
async function lockFor(registry: Registry, cwd: string, waitMs: number, retry: string): Promise<() => Promise<void>> {
  try {
    return await registry.lock(cwd, { waitMs })
  } catch (error) {
    if (!(error instanceof RegistryError) || !error.is('E_LOCKED')) throw error
    const holder = error.details.holder
    const by = holder ? ` by pid ${holder.pid} on ${holder.host} since ${holder.since}` : ''
    const waited = waitMs > 0 ? ` (still held after ${waitMs} ms)` : ''
    throw new RegistryError('E_LOCKED', `Workspace ${error.details.cwd ?? cwd} is locked${by}${waited}: wait for it to finish, or retry with ${retry}.`, error.details)
  }
}

/** End like the child did: when a signal killed it, die by the same signal so callers see it (else 128 + its number). */
function exitLike(ending: Ending): number {
  if (ending.signal) process.kill(process.pid, ending.signal)
  return ending.code
}

/** `wsreg run`: register a command as the workspace while it runs. */
export const run: Command = {
  usage: 'wsreg run [--name N] [--url U] [--cwd D] [--meta K=V]… [--lock [--wait MS]] -- CMD ARGS…',
  summary: 'run CMD (no shell, in its own process group) registered as the workspace; removed when it exits, exit code passed through (127: not found, 126: cannot run)',
  options: {
    name: { type: 'string', value: 'N', help: 'The name shown by ls (default: the folder name).', example: 'wsreg run --name api -- npm run dev' },
    url: { type: 'string', value: 'U', help: 'Where the workspace answers, recorded in its entry.', example: 'wsreg run --url http://127.0.0.1:3000 -- npm run dev' },
    cwd: { type: 'string', value: 'D', help: 'Run CMD in the folder D and register D (default: the current folder).', example: 'wsreg run --cwd ~/src/api -- npm run dev' },
    meta: { type: 'string', multiple: true, value: 'K=V', help: 'Record K=V in the entry\'s meta; repeat for more (a later K wins).', example: 'wsreg run --meta branch=main --meta team=a -- npm run dev' },
    lock: { type: 'boolean', help: 'Refuse to start CMD (exit 3) while the workspace is locked or claimed.', example: 'wsreg run --lock -- npm run dev' },
    wait: { type: 'string', value: 'MS', help: 'With --lock: wait up to MS milliseconds for the lock to be free.', example: 'wsreg run --lock --wait 5000 -- npm run dev' },
  },
  commandAfter: 0,
  async run(context) {
    expectPositionals(context, 0, 0, run.usage)
    const [file, args] = commandLine(context, run.usage)
    const meta = parseMeta(context.values.meta)
    const waitMs = milliseconds(context, 'wait')
    if (waitMs !== undefined && !context.values.lock) throw new UsageError('--wait applies to --lock: wsreg run --lock --wait 5000 -- CMD')
    const cwd = resolve(typeof context.values.cwd === 'string' ? context.values.cwd : process.cwd())
    if (!isFolder(cwd)) {
      reportError(context.output, context.json, 'E_NO_CWD', `cannot run in ${cwd}: no such folder (create it, or pass an existing folder to --cwd)`)
      return EXIT.failure
    }
    const registry = await context.registry()
    const release = context.values.lock ? await lockFor(registry, cwd, waitMs ?? 0, '--wait MS') : undefined
    let claim: Claim | undefined
    let ending: Ending
    try {
      ending = await supervise(context, file, args, {
        cwd,
        onSpawn: async (pid) => {
          try {
            claim = await registry.claim({
              cwd,
              pid,
              name: context.values.name as string | undefined,
              url: context.values.url as string | undefined,
              ...(meta ? { meta } : {}),
              cleanupOnExit: false,
            })
          } catch (error) {
            // Claims are exclusive: the command already runs, so it stays supervised, just not registered.
            if (error instanceof RegistryError && error.is('E_LOCKED')) {
              const { pid, entry } = error.details
              const url = entry?.url ? ` (${context.json ? entry.url : inline(entry.url)})` : ''
              reportError(context.output, context.json, 'E_LOCKED', `${cwd} is already claimed${pid ? ` by pid ${pid}` : ''}${url}; the command runs unregistered (--lock refuses to start it instead)`)
              return
            }
            // A child that ended before it could be recorded has nothing to register.
            if ((error as { code?: string }).code !== 'E_INVALID') throw error
          }
        },
      })
    } finally {
      await claim?.release()
      await release?.()
    }
    return exitLike(ending)
  },
}

/** `wsreg lock`: run a command while holding the workspace lock, like flock(1). */
export const lock: Command = {
  usage: 'wsreg lock <cwd> [--wait MS] -- CMD ARGS…',
  summary: 'run CMD while holding the workspace lock (exit 3 when it is held)',
  options: {
    wait: { type: 'string', value: 'MS', help: 'Wait up to MS milliseconds for the lock instead of exiting 3 at once.', example: 'wsreg lock . --wait 5000 -- npm run migrate' },
  },
  commandAfter: 1,
  async run(context) {
    expectPositionals(context, 1, 1, lock.usage)
    const [file, args] = commandLine(context, lock.usage)
    const registry = await context.registry()
    const waitMs = milliseconds(context, 'wait') ?? 0
    const release = await lockFor(registry, context.positionals[0] as string, waitMs, waitMs > 0 ? 'a longer --wait MS' : '--wait MS')
    let ending: Ending
    try {
      ending = await supervise(context, file, args, {})
    } finally {
      await release()
    }
    return exitLike(ending)
  },
}

function describe(result: ReapResult, entry: Entry, entryKept: boolean): string {
  const verb = result.dryRun
    ? result.outcome === 'terminated' ? 'would stop' : `would remove (${result.outcome})`
    : result.outcome
  return `${verb} pid ${result.pid} of ${inline(entry.name)} (${inline(result.cwd)})${entryKept ? ' — entry kept' : ''}`
}

/** `wsreg reap`: stop what a workspace (or every orphan) left running, and remove its entry. */
export const reap: Command = {
  usage: 'wsreg reap <id|cwd|name> [--grace MS] [--group] [--dry-run] | wsreg reap --orphans [--grace MS] [--group] [--dry-run]',
  summary: 'stop a workspace process (SIGTERM, grace, SIGKILL; identity re-checked) and remove its entry',
  options: {
    grace: { type: 'string', value: 'MS', help: 'Milliseconds between SIGTERM and SIGKILL (default 2000).', example: 'wsreg reap ./api --grace 2000' },
    group: { type: 'boolean', help: "Signal the process's whole process group, so what it started ends too.", example: 'wsreg reap ./api --group' },
    'dry-run': { type: 'boolean', short: 'n', help: 'Say what would be stopped and removed, and do nothing.', example: 'wsreg reap --orphans --dry-run' },
    orphans: { type: 'boolean', help: 'Reap every orphan (running, its folder gone) instead of one workspace.', example: 'wsreg reap --orphans' },
  },
  async run(context) {
    const all = Boolean(context.values.orphans)
    expectPositionals(context, all ? 0 : 1, all ? 0 : 1, reap.usage)
    const registry = await context.registry()
    const options = { graceMs: milliseconds(context, 'grace'), signalGroup: Boolean(context.values.group), dryRun: Boolean(context.values['dry-run']) }
    let entries: Entry[]
    if (all) {
      entries = await registry.orphans()
    } else {
      const entry = await resolveRef(context.positionals[0] as string, liveEntries(registry))
      if (!entry) return notFound(context, registry, context.positionals[0])
      entries = [entry]
    }
    const results: ReapResult[] = []
    let refused = 0
    for (const entry of entries) {
      let result: ReapResult
      try {
        result = await registry.reap(entry, options)
      } catch (error) {
        // A refusal (another user's process, an unverifiable identity, a pid that does not lead its group) is a
        // runtime fact, never a usage error (exit 1); `--orphans` reports it and goes on: one refusal never stops the rest.
        if (!(error instanceof RegistryError)) throw error
        if (error.code === 'E_NOT_FOUND' && !all) return notFound(context, registry, context.positionals[0])
        refused++
        reportError(context.output, context.json, error.code, context.json ? error.message : inline(error.message), { cwd: entry.cwd, pid: entry.pid })
        continue
      }
      results.push(result)
      const kept = !result.dryRun && !result.removed
      if (!context.json) context.output.out.write(`${describe(result, entry, kept)}\n`)
    }
    if (context.json && (all || results.length > 0)) printJson(context.output, all ? results : results[0])
    else if (all && results.length === 0 && refused === 0) context.output.err.write(`No orphans in ${registry.dir}\n`)
    return refused > 0 ? EXIT.failure : EXIT.ok
  },
}

/** `wsreg orphans`: workspaces whose process runs on but whose folder is gone. */
export const orphans: Command = {
  usage: 'wsreg orphans [--json]',
  summary: 'list running workspaces whose folder is gone, in the Trash, or lacks its marker',
  async run(context) {
    expectPositionals(context, 0, 0, orphans.usage)
    const registry = await context.registry()
    const rows = await registry.orphans()
    if (context.json) printJson(context.output, rows)
    else if (rows.length === 0) context.output.err.write(`No orphans in ${registry.dir}\n`)
    else context.output.out.write(`${entryTable(rows, context.output)}\n`)
    return EXIT.ok
  },
}
