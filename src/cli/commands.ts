import type { Command, Options } from './command.js'

// Each command module is loaded only when its command runs, so start-up stays near `node -e 0`.
export const COMMANDS: Record<string, () => Promise<Command>> = {
  ls: async () => (await import('./inspect.js')).ls,
  show: async () => (await import('./inspect.js')).show,
  path: async () => (await import('./inspect.js')).path,
  rm: async () => (await import('./maintain.js')).rm,
  prune: async () => (await import('./maintain.js')).prune,
  doctor: async () => (await import('./maintain.js')).doctor,
  run: async () => (await import('./process.js')).run,
  lock: async () => (await import('./process.js')).lock,
  reap: async () => (await import('./process.js')).reap,
  orphans: async () => (await import('./process.js')).orphans,
  watch: async () => (await import('./watch.js')).watch,
  history: async () => (await import('./history.js')).history,
  publish: async () => (await import('./fleet.js')).publish,
  completion: async () => (await import('./completion.js')).completion,
  __complete: async () => (await import('./completion.js')).complete,
}

/** Options every command takes. */
export const GLOBAL_OPTIONS = {
  dir: { type: 'string', value: 'DIR', help: 'Use the registry folder DIR instead of the default ($WSREG_REGISTRY_DIR, $XDG_STATE_HOME/wsreg/workspaces, ~/.local/state/wsreg/workspaces).', example: 'wsreg --dir /tmp/reg ls' },
  app: { type: 'string', value: 'NAME', help: 'Use the registry of the app NAME, the one new Registry({ app: NAME }) uses (default: wsreg).', example: 'wsreg --app my-tool ls' },
  json: { type: 'boolean', help: 'Print one JSON document on stdout (watch: one JSON object per line); errors become {"error":{…}} on stderr.', example: 'wsreg ls --json' },
  help: { type: 'boolean', short: 'h', help: 'Print the help of wsreg, or of the command given.', example: 'wsreg run --help' },
  version: { type: 'boolean', help: 'Print the version of wsreg.', example: 'wsreg --version' },
} as const satisfies Options
