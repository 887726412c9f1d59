#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { EXIT, UsageError, reportError, type CommandContext } from './command.js'
import { COMMANDS, GLOBAL_OPTIONS } from './commands.js'
import { commandHelp, missingTerminator, overview, rewordParseError } from './help.js'
import { inline, terminalOutput, wantsColor, type Output } from './output.js'

const VALUE_OPTIONS = new Set(['--dir', '--app', '--store', '--to', '--host', '--ttl'])

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/** Find the command word: the first argument that is neither an option nor a global option's value. */
function splitCommand(argv: string[]): { name: string | undefined; args: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--') break
    if (VALUE_OPTIONS.has(arg)) {
      i++
      continue
    }
    if (!arg.startsWith('-')) return { name: arg, args: [...argv.slice(0, i), ...argv.slice(i + 1)] }
  }
  return { name: undefined, args: argv }
}

/** Run `wsreg` with `argv` (without node and script) writing to a {@link terminalOutput}; resolves to the exit code. */
export async function main(argv: string[], output: Output): Promise<number> {
  const { name, args } = splitCommand(argv)
  const load = name === undefined ? undefined : COMMANDS[name]
  if (name !== undefined && !load) throw new UsageError(`Unknown command ${JSON.stringify(name)}. Run \`wsreg --help\` for the list.`)
  const command = load ? await load() : undefined
  const options = { ...GLOBAL_OPTIONS, ...command?.options }
  const meant = name && command && !args.includes('--help') && !args.includes('-h') ? missingTerminator(name, command, args, options) : undefined
  if (meant) throw new UsageError(`put -- before the command: ${meant}`)
  let parsed
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true, tokens: true })
  } catch (error) {
    throw new UsageError(`${rewordParseError(error as Error, name, command)}${command ? `\nUsage: ${command.usage}` : ''}`)
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>
  if (values.version) {
    output.out.write(`${version()}\n`)
    return EXIT.ok
  }
  // Help asked for goes to stdout; usage printed because of a mistake goes to stderr.
  if (values.help) {
    output.out.write(command ? commandHelp(command) : await overview())
    return EXIT.ok
  }
  if (!command) {
    output.err.write(await overview())
    return EXIT.usage
  }
  const terminator = parsed.tokens.find((token) => token.kind === 'option-terminator')
  const rest = terminator ? args.slice(terminator.index + 1) : []
  const positionals = parsed.positionals.slice(0, parsed.positionals.length - rest.length)
  let registry: Promise<import('../index.js').Registry> | undefined
  const context: CommandContext = {
    registry: () => {
      registry ??= import('../registry.js').then(({ Registry }) => {
        const dir = typeof values.dir === 'string' ? resolve(values.dir) : undefined
        return new Registry({ dir, app: typeof values.app === 'string' ? values.app : undefined })
      })
      return registry
    },
    json: Boolean(values.json),
    positionals,
    rest,
    values,
    output,
  }
  return command.run(context)
}

const EXIT_BY_CODE: Record<string, number> = { E_LOCKED: EXIT.locked, E_NAME_TAKEN: EXIT.locked, E_NOT_FOUND: EXIT.notFound, E_INVALID: EXIT.usage }

async function run(): Promise<void> {
  const output: Output = terminalOutput({ out: process.stdout, err: process.stderr, color: wantsColor(process.stdout) })
  const argv = process.argv.slice(2)
  // Known before parsing, so even a usage error comes out as JSON when --json was asked for.
  const asJson = argv.slice(0, argv.includes('--') ? argv.indexOf('--') : argv.length).includes('--json')
  try {
    process.exitCode = await main(argv, output)
  } catch (error) {
    if (error instanceof UsageError) {
      const matches = (error as UsageError & { matches?: unknown }).matches
      reportError(output, asJson, matches ? 'E_AMBIGUOUS' : 'E_USAGE', error.message, matches ? { matches } : {})
      process.exitCode = EXIT.usage
    } else if (error instanceof Error && error.name === 'RegistryError') {
      // Expected failures print as a message; anything else is a bug and keeps its stack.
      const code = (error as Error & { code: string }).code
      reportError(output, asJson, code, asJson ? error.message : inline(error.message))
      process.exitCode = EXIT_BY_CODE[code] ?? EXIT.failure
    } else {
      const message = `unexpected error (a bug; please report it):\n${(error as Error)?.stack ?? String(error)}`
      reportError(output, asJson, 'E_BUG', message)
      process.exitCode = EXIT.failure
    }
  }
}

// No top-level await: the same module is also bundled as CommonJS for the `wsreg` bin (scripts/bundle-cli.mjs).
void run()
