// Profile list() at N entries: `node --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile.mjs [N] [rounds]`,
// then `node bench/profile.mjs --summary /tmp/prof/<file>.cpuprofile` prints self time by function.
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'

if (process.argv[2] === '--summary') {
  const profile = JSON.parse(readFileSync(process.argv[3], 'utf8'))
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  // Only samples taken inside list(): fixture building and cleanup are not what we profile.
  const parent = new Map()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const inside = (id) => {
    for (let at = id; at !== undefined; at = parent.get(at)) if (byId.get(at).callFrame.functionName === (process.argv[4] ?? 'list')) return true
    return false
  }
  const self = new Map()
  const dt = profile.timeDeltas
  // Garbage collection and V8's own work show as root-level samples: count those that fall between list() samples.
  const within = profile.samples.map((id) => inside(id))
  const first = within.indexOf(true)
  const last = within.lastIndexOf(true)
  const rootLevel = new Set(['(garbage collector)', '(program)'])
  profile.samples.forEach((id, i) => {
    if (!within[i] && !(i > first && i < last && rootLevel.has(byId.get(id).callFrame.functionName))) return
    const { functionName, url, lineNumber } = byId.get(id).callFrame
    const key = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`
    self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0))
  })
  const total = [...self.values()].reduce((a, b) => a + b, 0)
  for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
    console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${key}`)
  }
} else {
  const { Registry } = await import('../dist/index.js')
  const { buildRegistry, makeWorkspaces, startOwners, stopOwners } = await import('./fixtures.mjs')
  const n = Number(process.argv[2] ?? 10000)
  const rounds = Number(process.argv[3] ?? 20)
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'wsreg-prof-')))
  const owners = await startOwners(Math.max(1, n / 100))
  try {
    const dir = join(root, 'reg')
    buildRegistry(dir, makeWorkspaces(root, n), owners)
    const registry = new Registry({ dir })
    const times = []
    for (let i = 0; i < rounds; i++) {
      const start = performance.now()
      await registry.list()
      times.push(performance.now() - start)
    }
    times.sort((a, b) => a - b)
    console.log(`list() at ${n}: median ${times[times.length >> 1].toFixed(1)} ms, min ${times[0].toFixed(1)} ms`)
  } finally {
    await stopOwners(owners)
    rmSync(root, { recursive: true, force: true })
  }
}
