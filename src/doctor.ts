import { chmodSync, lstatSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { LOCK_FILE_NAME, lockHolder, lockState } from './lock.js'
import { ENTRY_NAME, QUARANTINE_DIR } from './paths.js'
import type { Registry } from './registry.js'
import { dirProblem } from './store.js'

/** One finding of {@link diagnose}. */
export interface Finding {
  /** `problem` makes `wsreg doctor` fail; `note` is worth knowing but needs no action. */
  severity: 'problem' | 'note'
  /** Stable kind, for scripts. */
  kind: 'unsafe-dir' | 'file-mode' | 'corrupt' | 'dead' | 'stale-temp' | 'orphan' | 'unknown' | 'quarantined' | 'missing-dir' | 'lock-held' | 'stale-lock-file'
  /** What is wrong, in a sentence. */
  message: string
  /** The file or folder concerned. */
  path: string
  /** Whether `doctor --fix` repairs it. */
  fixable: boolean
}

/** The outcome of a checkup: findings, and with `fix` what was repaired. */
export interface Diagnosis {
  dir: string
  findings: Finding[]
  fixed: string[]
  /** True when no `problem` finding remains. */
  healthy: boolean
}

/** Check a registry folder (permissions, corrupt files, dead entries, temp debris, orphans); with `fix`, make only the safe repairs. */
export async function diagnose(registry: Registry, options: { fix?: boolean } = {}): Promise<Diagnosis> {
  const fixed: string[] = []
  if (options.fix) fixed.push(...(await repair(registry)))
  const findings = await findProblems(registry)
  return { dir: registry.dir, findings, fixed, healthy: !findings.some((finding) => finding.severity === 'problem') }
}

async function findProblems(registry: Registry): Promise<Finding[]> {
  const dir = registry.dir
  const findings: Finding[] = []
  if (!lstatSync(dir, { throwIfNoEntry: false })) {
    return [{ severity: 'note', kind: 'missing-dir', message: 'the registry folder does not exist yet (created on first write)', path: dir, fixable: false }]
  }
  const unsafe = dirProblem(dir)
  if (unsafe) {
    const ours = !lstatSync(dir).isSymbolicLink() && lstatSync(dir).uid === process.getuid?.()
    findings.push({ severity: 'problem', kind: 'unsafe-dir', message: `registry folder ${unsafe}`, path: dir, fixable: ours && /writable/.test(unsafe) })
    return findings
  }
  for (const name of readdirSync(dir)) {
    if (!ENTRY_NAME.test(name)) continue
    const stat = lstatSync(join(dir, name), { throwIfNoEntry: false })
    if (stat?.isFile() && (stat.mode & 0o077) !== 0) {
      findings.push({ severity: 'problem', kind: 'file-mode', message: `entry file is readable or writable by others (mode ${(stat.mode & 0o777).toString(8)})`, path: join(dir, name), fixable: true })
    }
  }
  for (const item of await registry.prune({ dryRun: true })) {
    if (item.reason === 'stale-lock') continue // reported below, with the lock's state
    if (item.reason === 'corrupt') {
      findings.push({ severity: 'problem', kind: 'corrupt', message: `corrupt entry file: ${item.problem}`, path: item.path, fixable: true })
    } else if (item.reason === 'stale-temp') {
      findings.push({ severity: 'problem', kind: 'stale-temp', message: 'temp file left by a crashed writer', path: item.path, fixable: true })
    } else {
      findings.push({ severity: 'problem', kind: 'dead', message: `stale entry of ${item.cwd} (${item.reason})`, path: item.path, fixable: true })
    }
  }
  for (const row of await registry.listInfo({ prune: false })) {
    if (row.status === 'orphan') {
      findings.push({ severity: 'problem', kind: 'orphan', message: `pid ${row.pid} still runs but its workspace ${row.cwd} is gone (${row.reason}); stop it with \`wsreg reap ${row.id}\``, path: row.path, fixable: false })
    } else if (row.status === 'unknown') {
      findings.push({ severity: 'note', kind: 'unknown', message: `entry of ${row.cwd} cannot be judged here (${row.reason}); it is kept`, path: row.path, fixable: false })
    }
  }
  for (const name of readdirSync(dir)) {
    const id = LOCK_FILE_NAME.exec(name)?.[1]
    if (!id) continue
    // Asked by connecting, never by binding: a doctor must not take a lock from under a starting tool.
    const state = await lockState(dir, id)
    const holder = lockHolder(dir, id)
    if (state === 'held') {
      findings.push({ severity: 'note', kind: 'lock-held', message: `workspace lock is held${holder ? ` by pid ${holder.pid} since ${holder.since}` : ''}`, path: join(dir, name), fixable: false })
    } else if (state === 'free') {
      findings.push({ severity: 'note', kind: 'stale-lock-file', message: 'holder record left by a lock holder that was killed; harmless; the next holder replaces it and `wsreg prune` removes it', path: join(dir, name), fixable: true })
    }
  }
  for (const name of quarantinedNames(dir)) {
    findings.push({ severity: 'note', kind: 'quarantined', message: 'corrupt file kept in quarantine; inspect and delete it by hand', path: join(dir, QUARANTINE_DIR, name), fixable: false })
  }
  return findings
}

function quarantinedNames(dir: string): string[] {
  try {
    return readdirSync(join(dir, QUARANTINE_DIR))
  } catch {
    return []
  }
}

async function repair(registry: Registry): Promise<string[]> {
  const dir = registry.dir
  const done: string[] = []
  const stat = lstatSync(dir, { throwIfNoEntry: false })
  if (!stat) return done
  if (stat.isDirectory() && !stat.isSymbolicLink() && stat.uid === process.getuid?.() && (stat.mode & 0o022) !== 0) {
    chmodSync(dir, 0o700)
    done.push(`chmod 700 ${dir}`)
  }
  if (dirProblem(dir)) return done
  for (const name of readdirSync(dir)) {
    if (!ENTRY_NAME.test(name)) continue
    const path = join(dir, name)
    const file = lstatSync(path, { throwIfNoEntry: false })
    if (file?.isFile() && (file.mode & 0o077) !== 0) {
      chmodSync(path, 0o600)
      done.push(`chmod 600 ${path}`)
    }
  }
  for (const item of await registry.prune()) {
    if (item.reason === 'corrupt') done.push(item.quarantinedTo ? `quarantined ${item.path} → ${item.quarantinedTo}` : `could not quarantine ${item.path}`)
    else if (item.reason === 'stale-temp') done.push(`swept ${item.path}`)
    else if (item.reason === 'stale-lock') done.push(`removed ${item.path} (record of a killed lock holder)`)
    else done.push(`removed ${item.path} (${item.reason})`)
  }
  return done
}
