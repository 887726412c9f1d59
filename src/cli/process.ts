import { spawn } from 'node:child_process'
import { constants } from 'node:os'
import { resolve } from 'node:path'
import { RegistryError, type Claim, type Entry, type ReapResult } from '../index.js'
import { EXIT, UsageError, expectPositionals, notFound, type Command, type CommandContext } from './command.js'
import { liveEntries, resolveRef } from './ref.js'
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

/** Run `file args` without a shell, passing signals on, until it ends. */
async function supervise(context: CommandContext, file: string, args: string[], options: { cwd?: string; onSpawn?: (pid: number) => Promise<void> }): Promise<Ending> {
  const child = spawn(file, args, { cwd: options.cwd, stdio: 'inherit' })
  const forward = (signal: NodeJS.Signals) => {
    child.kill(signal)
  }
  for (const signal of FORWARDED) process.on(signal, forward)
  try {
    const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null } | { error: NodeJS.ErrnoException }>((done) => {
      child.once('error', (error) => done({ error }))
      child.once('exit', (code, signal) => done({ code, signal }))
    })
    if (child.pid !== undefined) await options.onSpawn?.(child.pid)
    const result = await ended
    if ('error' in result) {
      const missing = result.error.code === 'ENOENT'
      context.output.err.write(`wsreg: cannot run ${JSON.stringify(file)}: ${missing ? 'command not found' : result.error.message}\n`)
      return { code: missing ? 127 : 126, signal: null } // the shell's codes for "not found" and "cannot execute"
    }
    if (result.signal) return { code: 128 + (constants.signals[result.signal] ?? 0), signal: result.signal }
    return { code: result.code ?? EXIT.failure, signal: null }
  } finally {
    for (const signal of FORWARDED) process.off(signal, forward)
  }
}

/** End like the child did: when a signal killed it, die by the same signal so callers see it (else 128 + its number). */
function exitLike(ending: Ending): number {
  if (ending.signal) process.kill(process.pid, ending.signal)
  return ending.code
}

/** `wsreg run`: register a command as the workspace while it runs. */
export const run: Command = {
  usage: 'wsreg run [--name N] [--url U] [--cwd D] [--lock] -- CMD ARGS…',
  summary: 'run CMD (no shell) registered as the workspace; removed when it exits, exit code passed through',
  options: { name: { type: 'string' }, url: { type: 'string' }, cwd: { type: 'string' }, lock: { type: 'boolean' } },
  async run(context) {
    expectPositionals(context, 0, 0, run.usage)
    const [file, args] = commandLine(context, run.usage)
    const cwd = resolve(typeof context.values.cwd === 'string' ? context.values.cwd : process.cwd())
    const registry = await context.registry()
    const release = context.values.lock ? await registry.lock(cwd) : undefined
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
              cleanupOnExit: false,
            })
          } catch (error) {
            // Claims are exclusive: the command already runs, so it stays supervised, just not registered.
            if (error instanceof RegistryError && error.is('E_LOCKED')) {
              const { pid, entry } = error.details
              context.output.err.write(`wsreg: ${cwd} is already claimed${pid ? ` by pid ${pid}` : ''}${entry?.url ? ` (${entry.url})` : ''}; the command runs unregistered (--lock refuses to start it instead)\n`)
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
  options: { wait: { type: 'string' } },
  async run(context) {
    expectPositionals(context, 1, 1, lock.usage)
    const [file, args] = commandLine(context, lock.usage)
    const registry = await context.registry()
    const release = await registry.lock(context.positionals[0] as string, { waitMs: milliseconds(context, 'wait') ?? 0 })
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
  usage: 'wsreg reap <id|cwd|name> [--grace MS] [--group] [--dry-run] | wsreg reap --orphans',
  summary: 'stop a workspace process (SIGTERM, grace, SIGKILL; identity re-checked) and remove its entry',
  options: { grace: { type: 'string' }, group: { type: 'boolean' }, 'dry-run': { type: 'boolean', short: 'n' }, orphans: { type: 'boolean' } },
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
        // `--orphans` reaps each orphan it may and reports the others: one refusal never stops the rest.
        if (!all || !(error instanceof RegistryError)) throw error
        refused++
        context.output.err.write(`${error.message}\n`)
        continue
      }
      results.push(result)
      const kept = !result.dryRun && !result.removed
      if (!context.json) context.output.out.write(`${describe(result, entry, kept)}\n`)
    }
    if (context.json) printJson(context.output, all ? results : results[0])
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
