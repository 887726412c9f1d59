// The short chaos soak: the same run as `npm run soak` (test/soak/soak.mjs), for 20 seconds instead of 10 minutes.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const SOAK = fileURLToPath(new URL('./soak/soak.mjs', import.meta.url))

interface SoakReport {
  kills: number
  operations: Record<string, number>
  deletions: Record<string, number>
  events: Record<string, number>
  final: Record<string, number>
  violations: Array<{ kind: string; detail: unknown }>
  violationsByKind: Record<string, number>
}

function soak(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; report: SoakReport; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SOAK, '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text))
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text))
    child.on('error', reject)
    child.on('close', (code) => {
      try {
        resolve({ code, report: JSON.parse(stdout) as SoakReport, stderr })
      } catch {
        reject(new Error(`soak printed no report (exit ${code}): ${stderr}`))
      }
    })
  })
}

describe('chaos soak', () => {
  it('keeps every invariant while 16 workers are SIGKILLed at random for 20 seconds', async () => {
    const { code, report, stderr } = await soak(['--seconds', '20'])
    expect(report.violations, stderr).toEqual([])
    expect(code).toBe(0)
    // The run really exercised what it claims to have checked.
    expect(report.kills).toBeGreaterThan(20)
    for (const op of ['write', 'rewrite', 'remove', 'read', 'list', 'prune', 'lock', 'claim', 'claim-release']) {
      expect(report.operations[op], op).toBeGreaterThan(0)
    }
    expect(Object.keys(report.deletions).some((reason) => reason.endsWith('/owner-ended'))).toBe(true)
    expect(report.events.up).toBeGreaterThan(0)
    expect(report.events.down).toBe(report.events.up)
    expect(report.final['lock-entries']).toBeGreaterThan(0)
  }, 120_000)

  it('reports the breaches a broken library would cause (its own checks are live)', async () => {
    // SOAK_SABOTAGE adds operations that delete live entries of others, leave a lock while still "inside", and write in place.
    const { code, report } = await soak(['--seconds', '6', '--workers', '4', '--lock-targets', '1', '--kill-every', '1500'], { SOAK_SABOTAGE: '1' })
    expect(code).toBe(1)
    const kinds = report.violationsByKind
    expect(kinds['live-entry-deleted']).toBeGreaterThan(0)
    expect(kinds['two-lock-holders']).toBeGreaterThan(0)
    // A half-written file is caught by whoever reads it first: a raw reader, list, or prune.
    expect((kinds['torn-read'] ?? 0) + (kinds['corrupt-row'] ?? 0) + (kinds['corrupt-pruned'] ?? 0)).toBeGreaterThan(0)
  }, 60_000)
})
