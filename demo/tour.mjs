// `npm run demo`: a self-contained tour of workspace-registry in a temp folder. It starts three
// sample workspaces as real processes, lists them, SIGKILLs one, shows the watcher's `down` and
// the self-prune, shows the lock refusing a second start, reaps an orphan and cleans up.
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Registry } from '../dist/index.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const cli = join(here, '..', 'dist', 'cli', 'main.js')
const color = process.stdout.isTTY && !process.env.NO_COLOR
const style = (code, text) => (color ? `\u001b[${code}m${text}\u001b[0m` : text)
const heading = (n, text) => console.log(`\n${style('1', `${n}. ${text}`)}`)
const say = (text) => console.log(style('2', text))

const root = realpathSync(mkdtempSync(join(tmpdir(), 'wsreg-demo-')))
const dir = join(root, 'registry')
const children = new Map()

function wsreg(...args) {
  console.log(style('36', `$ wsreg ${args.join(' ')}`))
  const result = spawnSync(process.execPath, [cli, '--dir', dir, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: color ? '' : '1' } })
  process.stdout.write(result.stdout)
  if (result.stderr) process.stdout.write(style('2', result.stderr))
  return result
}

function start(name) {
  const cwd = join(root, name)
  mkdirSync(cwd, { recursive: true })
  const child = spawn(process.execPath, [join(here, 'workspace.mjs'), dir, cwd], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk) => (out += chunk))
  const settled = new Promise((resolve) => {
    child.stdout.on('data', () => out.includes('\n') && resolve(out.trim()))
    child.on('exit', (code) => resolve(out.trim() || `exited with ${code}`))
  })
  children.set(name, child)
  return { child, cwd, settled, exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal))) }
}

const nextEvent = (watcher, type) => new Promise((resolve) => watcher.once(type, resolve))

try {
  console.log(style('1', 'workspace-registry tour') + style('2', ` — a throwaway registry in ${dir}`))
  const registry = new Registry({ dir })
  const watcher = registry.watch({ intervalMs: 200 })
  watcher.on('up', ({ entry }) => console.log(style('32', `  ↑ up      ${entry.name} (pid ${entry.pid})`)))
  watcher.on('down', ({ entry, reason }) => console.log(style('31', `  ↓ down    ${entry.name} (${reason})`)))
  await nextEvent(watcher, 'ready')

  heading(1, 'Three workspaces start, each a real process that locks and claims its folder')
  const alpha = start('alpha')
  const beta = start('beta')
  const gamma = start('gamma')
  for (const ws of [alpha, beta, gamma]) await ws.settled
  while ((await registry.list()).length < 3) await new Promise((resolve) => setTimeout(resolve, 20))
  wsreg('ls')

  heading(2, 'beta is SIGKILLed: no exit hook runs, yet the watcher reports it down')
  const down = nextEvent(watcher, 'down')
  beta.child.kill('SIGKILL')
  await down
  say('Its file is still on disk; the next read or list judges it dead and deletes it:')
  wsreg('ls', '--all', '--no-prune')
  wsreg('ls')
  say(`Files left in the registry: ${readdirSync(dir).filter((name) => name.endsWith('.json')).length}`)

  heading(3, 'A second alpha is refused: the first one\'s claim holds the workspace lock, and the refusal carries its url')
  const second = start('alpha')
  console.log(`  ${await second.settled}  (exit code ${await second.exited})`)

  heading(4, "gamma's folder is deleted while it runs: an orphan, shown but never pruned")
  rmSync(gamma.cwd, { recursive: true, force: true })
  wsreg('orphans')
  const gammaDown = nextEvent(watcher, 'down')
  wsreg('reap', '--orphans', '--grace', '1000')
  await gammaDown
  console.log(`  gamma's process ended with ${await gamma.exited}`)

  heading(5, 'alpha stops normally: its claim removes its own entry on the way out')
  const alphaDown = nextEvent(watcher, 'down')
  alpha.child.kill('SIGTERM')
  await alphaDown
  wsreg('ls')
  await watcher.close()
} finally {
  for (const child of children.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  rmSync(root, { recursive: true, force: true })
  console.log(style('2', '\nCleaned up: temp registry and sample workspaces removed.'))
}
