import { appendFileSync, existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { fork } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { Registry, diagnose } from '../src/index.js'
import { lockState } from '../src/lock.js'
import { workspaceId } from '../src/paths.js'
import { refusal } from './helpers.js'
import { FIXTURES, running, sandbox, start, until } from './children.js'

describe('lock', () => {
  it('refuses a second locker in another process and names the holder pid', async () => {
    const { dir, cwd } = sandbox()
    const holder = start('lock-holder.mjs', ['hold', dir, cwd])
    expect(await holder.next()).toEqual({ locked: holder.pid })
    const error = await refusal(new Registry({ dir }).lock(cwd))
    expect(error.code).toBe('E_LOCKED')
    expect((error.details.holder as { pid: number }).pid).toBe(holder.pid)
  })

  it('refuses a second locker in the same process, even through another Registry object', async () => {
    const { dir, cwd } = sandbox()
    const release = await new Registry({ dir }).lock(cwd)
    const error = await refusal(new Registry({ dir }).lock(join(cwd, '.')))
    expect(error.code).toBe('E_LOCKED')
    expect((error.details.holder as { pid: number }).pid).toBe(process.pid)
    await release()
    await (await new Registry({ dir }).lock(cwd))()
  })

  it('is free at once when the holder is SIGKILLed', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const holder = start('lock-holder.mjs', ['hold', dir, cwd])
    await holder.next()
    expect((await refusal(registry.lock(cwd))).code).toBe('E_LOCKED')
    holder.process.kill('SIGKILL')
    await holder.ended
    const release = await registry.lock(cwd) // waitMs 0: no retry, no staleness timer
    await release()
  })

  it('is not blocked by a holder record naming an unrelated live process', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const bystander = start('child.mjs', [])
    await bystander.next()
    const { mkdirSync } = await import('node:fs')
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const record = join(dir, `${workspaceId(cwd)}.lock`)
    // A planted (or leftover) side file that names a live process: only the kernel decides who holds the lock.
    writeFileSync(record, `${JSON.stringify({ pid: bystander.pid, host: hostname(), since: new Date().toISOString() })}\n`)
    const release = await registry.lock(cwd)
    expect(JSON.parse(readFileSync(record, 'utf8')).pid).toBe(process.pid)
    await release()
    expect(running(bystander.pid)).toBe(true)
  })

  it('waits with waitMs until the holder lets go', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const holder = start('lock-holder.mjs', ['hold', dir, cwd])
    await holder.next()
    const waiting = registry.lock(cwd, { waitMs: 10_000 })
    holder.process.kill('SIGKILL')
    await (await waiting)()
  })

  it('does not keep the process alive while held', async () => {
    const { dir, cwd, root } = sandbox()
    const script = join(root, 'lock-and-return.mjs')
    writeFileSync(script, `import { Registry } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)}
await new Registry({ dir: ${JSON.stringify(dir)} }).lock(${JSON.stringify(cwd)})
console.log('held')\n`)
    const child = start(script, [])
    expect(await child.next()).toBe('held')
    expect(await child.ended).toEqual({ code: 0, signal: null })
  })

  it('lets a probe see the lock without taking it', async () => {
    const { dir, cwd } = sandbox()
    const id = workspaceId(cwd)
    expect(await lockState(dir, id)).toBe('free')
    const release = await new Registry({ dir }).lock(cwd)
    expect(await lockState(dir, id)).toBe('held')
    await release()
    expect(await lockState(dir, id)).toBe('free')
  })

  it('shows up in doctor as held, and as a leftover record once the holder was killed', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const holder = start('lock-holder.mjs', ['hold', dir, cwd])
    await holder.next()
    expect((await diagnose(registry)).findings).toMatchObject([{ kind: 'lock-held', message: expect.stringContaining(`pid ${holder.pid}`) }])
    holder.process.kill('SIGKILL')
    await holder.ended
    expect((await diagnose(registry)).findings).toMatchObject([{ kind: 'stale-lock-file', severity: 'note' }])
  })

  it('is cleaned by prune once the holder was killed, never while it lives (found by the chaos soak)', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    const side = join(dir, `${workspaceId(cwd)}.lock`)
    const holder = start('lock-holder.mjs', ['hold', dir, cwd])
    await holder.next()
    expect(await registry.prune()).toEqual([])
    expect(existsSync(side)).toBe(true)
    holder.process.kill('SIGKILL')
    await holder.ended
    expect(await registry.prune({ dryRun: true })).toMatchObject([{ reason: 'stale-lock', path: side }])
    expect(existsSync(side)).toBe(true)
    expect(await registry.prune()).toMatchObject([{ reason: 'stale-lock', path: side }])
    expect(existsSync(side)).toBe(false)
    const release = await registry.lock(cwd)
    expect(await registry.prune()).toEqual([])
    expect(existsSync(side)).toBe(true)
    await release()
  })

  it('has its temp files swept by prune once they are a minute old, like entry temp files', async () => {
    const { dir, cwd } = sandbox()
    const registry = new Registry({ dir })
    await registry.register(cwd)
    // What a holder SIGKILLed while writing its side file leaves behind.
    const temp = join(dir, `${workspaceId(cwd)}.lock.tmp-4242-7-0badc0de`)
    writeFileSync(temp, '{"pid":4242')
    expect(await registry.prune()).toEqual([])
    const old = new Date(Date.now() - 61_000)
    utimesSync(temp, old, old)
    expect(await registry.prune()).toMatchObject([{ reason: 'stale-temp', path: temp }])
    expect(existsSync(temp)).toBe(false)
  })

  it('has exactly one winner in each of 50 rounds among 8 processes', async () => {
    const { dir, cwd } = sandbox()
    const workers = Array.from({ length: 8 }, () => fork(join(FIXTURES, 'lock-holder.mjs'), ['race', dir, cwd], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }))
    const replies = workers.map((worker) => {
      const queue: any[] = []
      const waiting: Array<(message: any) => void> = []
      worker.on('message', (message) => (waiting.length ? waiting.shift()?.(message) : queue.push(message)))
      return () => (queue.length ? Promise.resolve(queue.shift()) : new Promise<any>((resolve) => waiting.push(resolve)))
    })
    try {
      await Promise.all(replies.map((reply) => reply()))
      for (let round = 0; round < 50; round++) {
        for (const worker of workers) worker.send('try')
        const answers = await Promise.all(replies.map((reply) => reply()))
        const winners = answers.flatMap((answer, index) => (answer.won ? [index] : []))
        expect(winners).toHaveLength(1)
        const winner = winners[0] as number
        for (const answer of answers.filter((answer) => !answer.won)) {
          expect(answer.code).toBe('E_LOCKED')
          // The holder is named when its side file is already written, and never wrongly.
          expect([null, workers[winner]?.pid]).toContain(answer.holder)
        }
        workers[winner]?.send('release')
        expect(await replies[winner]?.()).toEqual({ released: true })
      }
    } finally {
      for (const worker of workers) worker.kill('SIGKILL')
    }
  })

  it('never has two holders while holders are SIGKILLed at random', async () => {
    const { dir, cwd, root } = sandbox()
    const log = join(root, 'holders.log')
    writeFileSync(log, '')
    const spawnHolder = async () => {
      const holder = start('lock-holder.mjs', ['stress', dir, cwd, log])
      await holder.next()
      return holder
    }
    const holders = await Promise.all(Array.from({ length: 5 }, spawnHolder))
    const enters = () => readFileSync(log, 'utf8').split('\n').filter((line) => line.startsWith('enter')).length
    let kills = 0
    while (enters() < 100 || kills < 12) {
      await until(() => enters() > kills * 6, 10_000)
      const index = Math.floor(Math.random() * holders.length)
      const victim = holders[index]!
      // Marked before the signal: the lock cannot be freed by this death before the mark is in the log.
      appendFileSync(log, `kill ${victim.pid}\n`)
      victim.process.kill('SIGKILL')
      kills++
      holders[index] = await spawnHolder()
    }
    for (const holder of holders) {
      appendFileSync(log, `kill ${holder.pid}\n`)
      holder.process.kill('SIGKILL')
    }
    expect(overlaps(readFileSync(log, 'utf8'))).toEqual([])
  }, 30_000)
})

/** Replay the enter/leave/kill log; every enter while another live holder is inside is an overlap. */
function overlaps(log: string): string[] {
  const problems: string[] = []
  const doomed = new Set<string>()
  let holder: string | null = null
  for (const [index, line] of log.split('\n').filter(Boolean).entries()) {
    const [mark, pid] = line.split(' ') as [string, string]
    if (mark === 'kill') {
      doomed.add(pid)
      if (holder === pid) holder = null
    } else if (mark === 'enter') {
      // A doomed process may still win the lock between its kill mark and the signal landing; it dies holding it.
      if (holder !== null) problems.push(`line ${index + 1}: ${pid} entered while ${holder} held the lock`)
      if (!doomed.has(pid)) holder = pid
    } else if (mark === 'leave') {
      if (holder === pid) holder = null
      else if (!doomed.has(pid)) problems.push(`line ${index + 1}: ${pid} left without holding the lock`)
    }
  }
  return problems
}
