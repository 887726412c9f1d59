// The reserve soak: contenders race for one workspace behind a barrier, round after round.
import { fork, type ChildProcess } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { FIXTURES, sandbox } from './children.js'

const CONTENDERS = 8
const ROUNDS = 100

type Reply = { ready?: number; round?: number; won?: boolean; ms: number; lost?: { code: string; pid?: number; entry?: { pid: number; url?: string } }; released?: number }

const children: ChildProcess[] = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL')
})

/** A contender whose IPC replies arrive as a queue. */
function contender(dir: string, cwd: string, name?: string): { child: ChildProcess; next(): Promise<Reply> } {
  const child = fork(join(FIXTURES, 'reserver.mjs'), name === undefined ? [dir, cwd] : [dir, cwd, name], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  children.push(child)
  const queue: Reply[] = []
  const waiting: Array<(reply: Reply) => void> = []
  child.on('message', (reply: Reply) => {
    const waiter = waiting.shift()
    if (waiter) waiter(reply)
    else queue.push(reply)
  })
  return { child, next: () => (queue.length ? Promise.resolve(queue.shift() as Reply) : new Promise((resolve) => waiting.push(resolve))) }
}

describe('reserve soak', () => {
  it(`${CONTENDERS} processes × ${ROUNDS} rounds: one winner a round, and every loser gets E_LOCKED with the winner's pid and entry`, async () => {
    const { dir, cwd } = sandbox()
    const contenders = Array.from({ length: CONTENDERS }, () => contender(dir, cwd))
    const pids = await Promise.all(contenders.map(async (c) => (await c.next()).ready as number))
    const latencies: { won: number[]; lost: number[] } = { won: [], lost: [] }
    const problems: unknown[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const at = Date.now() + 15
      for (const { child } of contenders) child.send({ go: round, at })
      const replies = await Promise.all(contenders.map((c) => c.next()))
      for (const reply of replies) latencies[reply.won ? 'won' : 'lost'].push(reply.ms)
      const winners = replies.flatMap((reply, index) => (reply.won ? [pids[index] as number] : []))
      if (winners.length !== 1) {
        problems.push({ round, winners, replies })
        continue
      }
      const winner = winners[0] as number
      for (const reply of replies) {
        if (reply.won) continue
        const lost = reply.lost
        if (lost?.code !== 'E_LOCKED' || lost.pid !== winner || lost.entry?.pid !== winner || lost.entry.url !== `http://contender-${winner}.invalid`) {
          problems.push({ round, winner, lost })
        }
      }
      for (const { child } of contenders) child.send({ release: round })
      await Promise.all(contenders.map((c) => c.next()))
    }
    expect(problems).toEqual([])
    const summary = (list: number[]) => {
      const sorted = list.sort((a, b) => a - b)
      const at = (q: number) => (sorted[Math.floor(q * (sorted.length - 1))] as number).toFixed(1)
      return `p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms (${sorted.length})`
    }
    console.log(`claim latency under the race: winners ${summary(latencies.won)}; losers ${summary(latencies.lost)}`)
  }, 60_000)

  it('uniqueName: of contenders claiming one name at different cwds, one wins a round and the rest get E_NAME_TAKEN with its entry', async () => {
    const { root, dir } = sandbox()
    const contenders = Array.from({ length: CONTENDERS }, (_, index) => {
      const cwd = join(root, `ws-${index}`)
      mkdirSync(cwd)
      return contender(dir, cwd, 'dev-server')
    })
    const pids = await Promise.all(contenders.map(async (c) => (await c.next()).ready as number))
    const problems: unknown[] = []
    for (let round = 0; round < 20; round++) {
      const at = Date.now() + 15
      for (const { child } of contenders) child.send({ go: round, at })
      const replies = await Promise.all(contenders.map((c) => c.next()))
      const winners = replies.flatMap((reply, index) => (reply.won ? [pids[index] as number] : []))
      if (winners.length !== 1) problems.push({ round, winners })
      for (const reply of replies) {
        if (!reply.won && (reply.lost?.code !== 'E_NAME_TAKEN' || reply.lost.pid !== winners[0] || reply.lost.entry?.pid !== winners[0])) problems.push({ round, lost: reply.lost })
      }
      for (const { child } of contenders) child.send({ release: round })
      await Promise.all(contenders.map((c) => c.next()))
    }
    expect(problems).toEqual([])
  }, 60_000)
})
