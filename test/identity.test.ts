import { spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { captureIdentity, createPortablePlatform, inspectProcess, parseProcStat, platform } from '../src/identity.js'
import { deadPid, exited, sleeper, stdoutOf, track, waitFor } from './helpers.js'

const linux = process.platform === 'linux'

describe('parseProcStat', () => {
  it('counts fields after the last ")" so names with spaces and parentheses parse', () => {
    const rest = ['S', ...Array.from({ length: 18 }, (_, i) => String(i)), '987654', '0', '0']
    expect(parseProcStat(`123 (a) b (c)) ${rest.join(' ')}`)).toEqual({ state: 'S', startTicks: '987654' })
    expect(parseProcStat(`5 (x) Z ${rest.slice(1).join(' ')}`)?.state).toBe('Z')
  })

  it('returns null for text that is not a stat line', () => {
    expect(parseProcStat('garbage')).toBeNull()
    expect(parseProcStat('1 (x) S 1 2')).toBeNull()
  })
})

describe('inspectProcess', () => {
  it('sees this process running with a start identity (Linux)', () => {
    const probe = inspectProcess(process.pid)
    expect(probe.state).toBe('running')
    if (linux) expect(probe.startTime).toMatch(/^\d+$/)
  })

  it('calls an exited process gone', async () => {
    expect(inspectProcess(await deadPid()).state).toBe('gone')
  })

  it('never probes pid 0 or negative pids (they address process groups)', () => {
    expect(inspectProcess(0).state).toBe('gone')
    expect(inspectProcess(-1).state).toBe('gone')
    expect(inspectProcess(1.5).state).toBe('gone')
  })

  it('tells a zombie from a running process', async () => {
    if (!linux) return
    // `sleep 30` becomes the parent of the backgrounded child and never reaps it. The child must outlive
    // the exec: dash reaps a job that already finished (`true &`) before it execs, leaving no zombie.
    const parent = track(spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] }))
    const out = stdoutOf(parent)
    const pid = Number(await waitFor(() => out().trim()))
    await waitFor(() => inspectProcess(pid).state === 'zombie', 5000, 'zombie')
    parent.kill('SIGKILL')
    await exited(parent)
  })

  it('gives a later start identity to a process started later (a reused pid cannot pass as the owner)', async () => {
    if (!linux) return
    const a = sleeper()
    const first = Number(await waitFor(() => inspectProcess(a.pid as number).startTime))
    // Start ticks have 10 ms resolution: wait until the clock has moved past the first start.
    const since = Date.now()
    await waitFor(() => Date.now() - since > 30)
    const b = sleeper()
    expect(Number(await waitFor(() => inspectProcess(b.pid as number).startTime))).toBeGreaterThan(first)
  })

  it('the portable fallback knows only existence, never a start identity', async () => {
    const portable = createPortablePlatform()
    expect(portable.hasStartIdentity).toBe(false)
    expect(portable.inspect(process.pid)).toEqual({ state: 'running', startTime: null, startedAtMs: null })
    expect(portable.inspect(await deadPid()).state).toBe('gone')
  })
})

describe('captureIdentity', () => {
  it('records start time, boot id, host and PID namespace of a live pid', () => {
    const identity = captureIdentity(process.pid)
    expect(identity.host).toBeTruthy()
    if (linux) {
      expect(identity.pidStartTime).toBe(inspectProcess(process.pid).startTime)
      expect(identity.bootId).toMatch(/^[0-9a-f-]{36}$/)
      expect(identity.pidNamespace).toMatch(/^\d+$/)
      expect(platform.hasStartIdentity).toBe(true)
    }
  })

  it('records no start identity for pid 0', () => {
    expect(captureIdentity(0).pidStartTime).toBeNull()
  })
})
