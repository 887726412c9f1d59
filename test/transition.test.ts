import { describe, expect, it } from 'vitest'
import type { Entry } from '../src/entry.js'
import type { Verdict } from '../src/status.js'
import { transition, type Observation } from '../src/transition.js'

const base: Entry = {
  version: 1, id: '726a213943fe1d41', cwd: '/Users/dan/projects/foo', name: 'foo', pid: 4242, pidStartTime: '100',
  bootId: 'boot', host: 'here', startedAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z',
}
const alive: Verdict = { status: 'alive', reason: null }
const at = (entry: Partial<Entry>, verdict: Verdict = alive): Observation => ({ entry: { ...base, ...entry }, verdict })
const stillAlive = (): Verdict => alive
const types = (events: ReturnType<typeof transition>) => events.map((event) => (event.type === 'down' ? `down:${event.reason}` : event.type))

describe('transition', () => {
  it('ignores a rewrite that only moves updatedAt (a heartbeat)', () => {
    expect(transition(at({}), at({ updatedAt: '2026-01-01T00:01:00.000Z' }), stillAlive)).toEqual([])
  })

  it('calls alive → orphan a change, not a down', () => {
    expect(types(transition(at({}), at({}, { status: 'orphan', reason: 'cwd-missing' }), stillAlive))).toEqual(['change'])
  })

  it('keeps a legacy owner whose start identity was filled in by migration', () => {
    expect(types(transition(at({ pidStartTime: null, bootId: null }), at({}), stillAlive))).toEqual(['change'])
  })

  it('takes the reason of a dead same-owner verdict', () => {
    expect(types(transition(at({}), at({}, { status: 'dead', reason: 'rebooted' }), stillAlive))).toEqual(['down:rebooted'])
    expect(types(transition(at({}), at({}, { status: 'dead', reason: 'zombie' }), stillAlive))).toEqual(['down:exited'])
  })

  it('judges a vanished owner to tell removed from exited', () => {
    expect(types(transition(at({}), undefined, stillAlive))).toEqual(['down:removed'])
    expect(types(transition(at({}), undefined, () => ({ status: 'dead', reason: 'pid-reused' })))).toEqual(['down:pid-reused'])
  })

  it('says nothing about entries that were never listed', () => {
    const dead: Verdict = { status: 'dead', reason: 'exited' }
    expect(transition(undefined, at({}, dead), stillAlive)).toEqual([])
    expect(transition(at({}, dead), undefined, stillAlive)).toEqual([])
  })

  it('reports a new owner of a dead entry as up', () => {
    expect(types(transition(at({}, { status: 'dead', reason: 'exited' }), at({ pid: 99 }), stillAlive))).toEqual(['up'])
  })
})
