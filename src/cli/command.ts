import type { ParseArgsConfig } from 'node:util'
import type { Registry } from '../index.js'
import { inline, json, type Output } from './output.js'

/** Exit codes of `wsreg` (DESIGN.md §5). */
export const EXIT = { ok: 0, failure: 1, usage: 2, locked: 3, notFound: 4 } as const

/** A mistake in the command line: printed with the usage, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** What a command receives. */
export interface CommandContext {
  /** The registry named by --dir/--app (created on first use). */
  registry(): Promise<Registry>
  json: boolean
  positionals: string[]
  /** Arguments after `--`. */
  rest: string[]
  values: Record<string, string | boolean | string[] | undefined>
  output: Output
}

/** A command-line option: what `parseArgs` needs, with its help next to it (`--help` and the README reference). */
export type Option = NonNullable<ParseArgsConfig['options']>[string] & {
  /** One sentence saying what the option does. */
  help: string
  /** A whole command line using it. */
  example: string
  /** The placeholder of a string option's value in help, such as `MS`. */
  value?: string
}

/** The options of a command, by long name. */
export type Options = Record<string, Option>

/** One `wsreg` subcommand. */
export interface Command {
  usage: string
  summary: string
  options?: Options
  /** Positionals before the `-- CMD ARGS…` this command runs (`run`: 0, `lock`: 1); undefined when it runs none. */
  commandAfter?: number
  /** Left out of `wsreg --help` and the reference. */
  hidden?: boolean
  run(context: CommandContext): Promise<number>
}

/** Exactly `count` positionals, or a usage error naming the command's usage. */
export function expectPositionals(context: CommandContext, min: number, max: number, usage: string): void {
  const n = context.positionals.length
  if (n < min || n > max) throw new UsageError(`Expected ${min === max ? min : `${min}–${max}`} argument(s). Usage: ${usage}`)
}

/**
 * Print an error on stderr: with `--json` as one line `{"error":{"code","message",…}}` (DESIGN.md §5), else as
 * `wsreg: message` (`plain` drops the prefix for messages that are a finding, not a fault).
 */
export function reportError(output: Output, asJson: boolean, code: string, message: string, extra: Record<string, unknown> = {}, plain = false): void {
  output.err.write(asJson ? `${json({ error: { code, message, ...extra } })}\n` : `${plain ? '' : 'wsreg: '}${message}\n`)
}

/** Report a watcher's error: its own code (or E_WATCH), its message escaped for a terminal, exact in JSON. */
export function reportWatchError(output: Output, asJson: boolean, error: Error): void {
  reportError(output, asJson, (error as { code?: string }).code ?? 'E_WATCH', asJson ? error.message : inline(error.message))
}

/** Say on stderr that `argument` names no workspace; the exit code for it. */
export function notFound(context: CommandContext, registry: Registry, argument: string | undefined): number {
  reportError(context.output, context.json, 'E_NOT_FOUND', `No workspace ${argument} in ${registry.dir}`, {}, true)
  return EXIT.notFound
}
