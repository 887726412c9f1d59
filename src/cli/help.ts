import type { Command, Option, Options } from './command.js'
import { COMMANDS, GLOBAL_OPTIONS } from './commands.js'

const EXIT_CODES = 'Exit codes: 0 ok, 1 failure, 2 usage error, 3 lock held / already running, 4 not found; `run` and `lock` pass the exit code of CMD through (126: CMD cannot be executed, 127: CMD not found, 128+N: CMD killed by signal N).'

/** `-a, --all` or `--wait MS`: how an option is written. */
export function flag(name: string, option: Option): string {
  const long = `--${name}${option.type === 'string' ? ` ${option.value ?? 'VALUE'}` : ''}${option.multiple ? ' …' : ''}`
  return option.short ? `-${option.short}, ${long}` : long
}

function optionLines(options: Options): string[] {
  const entries = Object.entries(options)
  const width = Math.max(...entries.map(([name, option]) => flag(name, option).length))
  return entries.flatMap(([name, option]) => [`  ${flag(name, option).padEnd(width)}  ${option.help}`, `  ${' '.repeat(width)}  e.g. ${option.example}`])
}

/** The visible commands, loaded, in the order of {@link COMMANDS}. */
export async function visibleCommands(): Promise<Array<[string, Command]>> {
  const all = await Promise.all(Object.entries(COMMANDS).map(async ([name, load]) => [name, await load()] as [string, Command]))
  return all.filter(([, command]) => !command.hidden)
}

/** `wsreg <command> --help`: usage, summary, then every option with a sentence and an example. */
export function commandHelp(command: Command): string {
  const lines = [`Usage: ${command.usage}`, '', `${sentence(command.summary)}`]
  if (command.options && Object.keys(command.options).length > 0) lines.push('', 'Options:', ...optionLines(command.options))
  lines.push('', 'Global options: --dir DIR, --app NAME, --json, -h/--help (see wsreg --help).')
  return `${lines.join('\n')}\n`
}

/** `wsreg --help`: every command with its usage, the global options and the exit codes. */
export async function overview(): Promise<string> {
  const lines = ['Usage: wsreg [--dir DIR] [--app NAME] [--json] <command> [options]', '', 'Commands:']
  for (const [name, command] of await visibleCommands()) lines.push(`  ${name.padEnd(11)} ${command.summary}`, `              ${command.usage}`)
  lines.push('', 'Global options:', ...optionLines(GLOBAL_OPTIONS), '', 'Run `wsreg <command> --help` for its options.', EXIT_CODES)
  return `${lines.join('\n')}\n`
}

function sentence(text: string): string {
  const capital = text.charAt(0).toUpperCase() + text.slice(1)
  return /[.!?]$/.test(capital) ? capital : `${capital}.`
}

const cell = (text: string): string => text.replaceAll('|', '\\|')

/** The CLI reference of the README (Markdown), made from the same options as `--help`. */
export async function reference(): Promise<string> {
  const lines: string[] = []
  for (const [name, command] of await visibleCommands()) {
    lines.push(`### \`wsreg ${name}\``, '', `\`${command.usage}\``, '', sentence(command.summary), '')
    const options = Object.entries(command.options ?? {})
    if (options.length > 0) {
      lines.push('| option | what it does | example |', '|---|---|---|')
      for (const [option, spec] of options) lines.push(`| \`${cell(flag(option, spec))}\` | ${cell(spec.help)} | \`${cell(spec.example)}\` |`)
      lines.push('')
    }
  }
  lines.push('### Global options', '', '| option | what it does | example |', '|---|---|---|')
  for (const [option, spec] of Object.entries(GLOBAL_OPTIONS)) lines.push(`| \`${cell(flag(option, spec as Option))}\` | ${cell(spec.help)} | \`${cell(spec.example)}\` |`)
  lines.push('', EXIT_CODES.replace('Exit codes:', '**Exit codes:**'))
  return `${lines.join('\n')}\n`
}

/** A `parseArgs` error in our words (Node's text suggests `-- "--x"`, which is never what a wsreg user means). */
export function rewordParseError(error: Error & { code?: string }, name: string | undefined, command: Command | undefined): string {
  const see = name && command ? `Run \`wsreg ${name} --help\` for its options.` : 'Run `wsreg --help` for the options.'
  const option = /'(-{1,2}[^' ]+)/.exec(error.message)?.[1] ?? '?'
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `${name ? `wsreg ${name}` : 'wsreg'} has no option ${option}. ${see}`
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return error.message.includes('argument missing') ? `${option} needs a value. ${see}` : `${option} takes no value. ${see}`
    default:
      return `${error.message} ${see}`
  }
}

/**
 * When a command that runs `-- CMD` was given CMD without the `--`, the command line it meant
 * (`wsreg run -- npm run dev`), else undefined. `options` tells which flags consume the next argument.
 */
export function missingTerminator(name: string, command: Command, args: string[], options: Options): string | undefined {
  if (command.commandAfter === undefined || args.includes('--')) return undefined
  let positionals = 0
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    if (arg.startsWith('-') && arg !== '-') {
      const long = arg.startsWith('--') ? arg.slice(2) : Object.keys(options).find((key) => options[key]?.short === arg.slice(1))
      if (long !== undefined && !long.includes('=') && options[long]?.type === 'string') i++
      continue
    }
    if (positionals++ < command.commandAfter) continue
    const before = args.slice(0, i)
    return `wsreg ${[name, ...before, '--', ...args.slice(i)].join(' ')}`
  }
  return undefined
}
