import { existsSync } from 'node:fs'
import type { ParseArgsConfig } from 'node:util'
import type { Entry, Registry } from '../index.js'
import type { Output } from './output.js'

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
  values: Record<string, string | boolean | undefined>
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

const ID = /^[0-9a-f]{16}$/

/**
 * What a `<cwd|id>` argument names. An id is 16 hex chars; anything else must look like a path
 * (contain a separator, be `.`/`..`, or exist), so a mistyped id never becomes a file name.
 */
export function parseTarget(argument: string | undefined, what = 'a workspace'): { id: string } | { cwd: string } {
  if (argument === undefined || argument === '') throw new UsageError(`Name ${what}: a workspace folder or a 16-hex-char id.`)
  if (argument.includes('\0')) throw new UsageError('A workspace argument cannot contain NUL bytes.')
  if (ID.test(argument)) return { id: argument }
  if (argument.includes('/') || argument.includes('\\') || argument === '.' || argument === '..' || existsSync(argument)) return { cwd: argument }
  throw new UsageError(`${JSON.stringify(argument)} is neither an id (16 hex chars) nor a path: pass a folder such as ./${argument} or an id from \`wsreg ls\`.`)
}

/** Exactly `count` positionals, or a usage error naming the command's usage. */
export function expectPositionals(context: CommandContext, min: number, max: number, usage: string): void {
  const n = context.positionals.length
  if (n < min || n > max) throw new UsageError(`Expected ${min === max ? min : `${min}–${max}`} argument(s). Usage: ${usage}`)
}

/** The entry a `<cwd|id>` argument names, or undefined when it is not registered. */
export async function readTarget(registry: Registry, argument: string | undefined): Promise<Entry | undefined> {
  const target = parseTarget(argument)
  return 'id' in target ? registry.readId(target.id) : registry.read(target.cwd)
}

/** Say on stderr that `argument` names no workspace; the exit code for it. */
export function notFound(context: CommandContext, registry: Registry, argument: string | undefined): number {
  context.output.err.write(`No workspace ${argument} in ${registry.dir}\n`)
  return EXIT.notFound
}
