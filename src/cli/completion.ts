import { resolve } from 'node:path'
import { EXIT, UsageError, type Command, type Options } from './command.js'
import { COMMANDS, GLOBAL_OPTIONS } from './commands.js'

// The scripts ask `wsreg __complete -- WORDS…` (the words after `wsreg`, the one being typed last) for
// candidates, one per line: the shell only filters and shows them, so every shell completes the same.
const SCRIPTS: Record<string, string> = {
  bash: `# wsreg completion for bash: eval "$(wsreg completion bash)"
_wsreg() {
  local IFS=$'\\n'
  COMPREPLY=($(wsreg __complete -- "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _wsreg wsreg
`,
  zsh: `#compdef wsreg
# wsreg completion for zsh: eval "$(wsreg completion zsh)"
_wsreg() {
  local -a candidates
  candidates=("\${(@f)$(wsreg __complete -- "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  if (( \${#candidates[@]} )) && [[ -n "\${candidates[1]}" ]]; then compadd -a candidates; else _files; fi
}
compdef _wsreg wsreg
`,
  fish: `# wsreg completion for fish: wsreg completion fish | source
complete -c wsreg -a '(wsreg __complete -- (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'
`,
}

/** `wsreg completion bash|zsh|fish`: the shell script that completes wsreg. */
export const completion: Command = {
  usage: 'wsreg completion bash|zsh|fish',
  summary: 'print a script that completes commands, options and workspace names and ids (e.g. eval "$(wsreg completion bash)")',
  async run(context) {
    const shell = context.positionals[0]
    const script = shell === undefined ? undefined : SCRIPTS[shell]
    if (context.positionals.length !== 1 || script === undefined) throw new UsageError(`Name the shell: ${completion.usage}.`)
    context.output.out.write(script)
    return EXIT.ok
  },
}

const REF_COMMANDS = new Set(['show', 'rm', 'reap', 'path', 'history', 'lock'])

/** `wsreg __complete -- WORDS…`: the candidates for the last word. Never fails: a completion that errs offers nothing. */
export const complete: Command = {
  usage: 'wsreg __complete -- WORDS…',
  summary: 'candidates for shell completion',
  hidden: true,
  async run(context) {
    try {
      const candidates = await candidatesFor(context.rest)
      if (candidates.length > 0) context.output.out.write(`${candidates.join('\n')}\n`)
    } catch {
      // Completion must never print an error into the user's command line.
    }
    return EXIT.ok
  },
}

function optionWords(options: Options): string[] {
  return Object.entries(options).map(([name]) => `--${name}`)
}

async function candidatesFor(words: string[]): Promise<string[]> {
  const current = words.at(-1) ?? ''
  const before = words.slice(0, -1)
  const globals: Record<string, string> = {}
  let name: string | undefined
  let positionals = 0
  for (let i = 0; i < before.length; i++) {
    const word = before[i] as string
    if (word === '--') return [] // CMD ARGS of run/lock: the shell's own completion applies
    if (word.startsWith('-')) {
      const long = word.replace(/^--?/, '')
      const command = name === undefined ? undefined : await COMMANDS[name]?.()
      const option = ({ ...GLOBAL_OPTIONS, ...command?.options } as Options)[long]
      if (option?.type === 'string') globals[long] = before[++i] ?? ''
      continue
    }
    if (name === undefined) name = word
    else positionals++
  }
  const previous = before.at(-1)
  const command = name === undefined ? undefined : await COMMANDS[name]?.()
  const all = { ...GLOBAL_OPTIONS, ...command?.options } as Options
  if (previous?.startsWith('-') && all[previous.replace(/^--?/, '')]?.type === 'string') return [] // a value: the shell completes files
  let candidates: string[]
  if (current.startsWith('-')) candidates = optionWords(all)
  else if (name === undefined) candidates = (await Promise.all(Object.entries(COMMANDS).map(async ([word, load]) => ((await load()).hidden ? [] : [word])))).flat()
  else if (name === 'completion') candidates = positionals === 0 ? Object.keys(SCRIPTS) : []
  else if (REF_COMMANDS.has(name) && positionals === 0) candidates = await refs(globals)
  else candidates = []
  return candidates.filter((candidate) => candidate.startsWith(current))
}

/** Names and ids of the registry's workspaces, read without pruning (completing never deletes). */
async function refs(globals: Record<string, string>): Promise<string[]> {
  const { Registry } = await import('../registry.js')
  const registry = new Registry({ dir: globals.dir ? resolve(globals.dir) : undefined, app: globals.app || undefined })
  const rows = await registry.listInfo({ prune: false })
  const names = new Set<string>()
  for (const row of rows) names.add(row.name)
  return [...[...names].sort(), ...rows.map((row) => row.id)]
}
