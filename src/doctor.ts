import { chmodSync, lstatSync, readdirSync, type Stats } from 'node:fs'
import { join } from 'node:path'
import { HISTORY_NAME } from './history.js'
import { LOCK_FILE_NAME, lockHolder, lockState } from './lock.js'
import { ENTRY_NAME, QUARANTINE_DIR } from './paths.js'
import type { Registry } from './registry.js'
import { dirProblem, readEntryView } from './store.js'

/** What a {@link Finding} is about; stable, for scripts. */
export type FindingKind =
  | 'missing-dir'
  | 'unsafe-dir'
  | 'dir-mode'
  | 'file-mode'
  | 'file-owner'
  | 'corrupt'
  | 'unreadable'
  | 'dead'
  | 'legacy'
  | 'stale-temp'
  | 'orphan'
  | 'unknown'
  | 'quarantined'
  | 'unsafe-quarantine'
  | 'lock-held'
  | 'stale-lock-file'
  | 'history-file'

/** One finding of {@link diagnose}. */
export interface Finding {
  /** `problem` makes `wsreg doctor` fail; `note` is worth knowing but needs no action. */
  severity: 'problem' | 'note'
  /** Stable kind, for scripts. */
  kind: FindingKind
  /** What is wrong, in a sentence, with the way out. */
  message: string
  /** The file or folder concerned. */
  path: string
  /** Whether `doctor --fix` repairs it. */
  fixable: boolean
  /** Why an entry has its status (`exited`, `foreign-host`, …), for entry findings. */
  reason?: string
}

/** The outcome of a checkup: findings, and with `fix` what was repaired. */
export interface Diagnosis {
  /** The registry folder that was checked. */
  dir: string
  /** Everything found, problems and notes, after any repairs. */
  findings: Finding[]
  /** One line per repair made (or attempted and failed), in order. */
  fixed: string[]
  /** True when no `problem` finding remains. */
  healthy: boolean
}

/**
 * Check a registry folder (permissions, corrupt and quarantined files, dead and unjudgeable entries,
 * temp debris, orphans); with `fix`, make only the safe repairs: chmod, prune, quarantine, sweep.
 */
export async function diagnose(registry: Registry, options: { fix?: boolean } = {}): Promise<Diagnosis> {
  const fixed = options.fix ? await repair(registry) : []
  const findings = await findProblems(registry)
  return { dir: registry.dir, findings, fixed, healthy: !findings.some((finding) => finding.severity === 'problem') }
}

const uid = process.getuid?.()
const ours = (stat: Stats) => uid === undefined || stat.uid === uid
const modeOf = (stat: Stats) => (stat.mode & 0o777).toString(8)

async function findProblems(registry: Registry): Promise<Finding[]> {
  const dir = registry.dir
  const findings: Finding[] = []
  const add = (severity: Finding['severity'], kind: FindingKind, path: string, message: string, fixable: boolean, reason?: string) =>
    findings.push({ severity, kind, message, path, fixable, ...(reason ? { reason } : {}) })
  const stat = lstatSync(dir, { throwIfNoEntry: false })
  if (!stat) {
    add('note', 'missing-dir', dir, 'the registry folder does not exist yet (it is created on first write)', false)
    return findings
  }
  const unsafe = dirProblem(dir)
  if (unsafe) {
    // Nothing inside a folder others can write to can be trusted, so nothing inside is inspected.
    add('problem', 'unsafe-dir', dir, `registry folder ${unsafe}`, stat.isDirectory() && ours(stat) && /writable/.test(unsafe))
    return findings
  }
  if ((stat.mode & 0o077) !== 0 && process.platform !== 'win32') {
    add('problem', 'dir-mode', dir, `registry folder is readable by others (mode ${modeOf(stat)}): entries show who runs what where; chmod 700`, ours(stat))
  }
  for (const name of readdirSync(dir)) {
    if (!ENTRY_NAME.test(name)) continue
    const path = join(dir, name)
    const file = lstatSync(path, { throwIfNoEntry: false })
    if (!file?.isFile()) continue // symlinks and the like are reported as corrupt below
    const read = readEntryView(path)
    if (read.kind === 'unreadable') {
      // Not corrupt: the failure is about this reader (descriptors, permissions, disk), so no repair touches the file.
      add('problem', 'unreadable', path, `entry file ${read.problem}; it is neither corrupt nor moved: fix the cause (ulimit -n, owner and mode, disk) and look again`, false)
    }
    if (!ours(file)) add('problem', 'file-owner', path, `entry file is owned by uid ${file.uid}, not by you (uid ${uid}): chown it to yourself or remove it`, false)
    else if ((file.mode & 0o077) !== 0) add('problem', 'file-mode', path, `entry file is readable or writable by others (mode ${modeOf(file)}): chmod 600`, true)
  }
  for (const item of await registry.prune({ dryRun: true })) {
    if (item.reason === 'stale-lock') continue // reported with the lock's state, below
    if (item.reason === 'corrupt') add('problem', 'corrupt', item.path, `corrupt entry file (${item.problem}); prune moves it to ${QUARANTINE_DIR}/`, true)
    else if (item.reason === 'stale-temp') add('problem', 'stale-temp', item.path, 'temp file left by a crashed writer; prune sweeps it', true)
    else if (item.reason === 'restored') add('problem', 'stale-temp', item.path, 'live entry left aside by a cleanup that was killed midway; prune puts it back', true, item.reason)
    else if (item.reason === 'legacy-migrated' || item.reason === 'legacy-duplicate') {
      add('note', 'legacy', item.path, `legacy per-process file of ${item.cwd}; the next list or prune folds it into <id>.json`, true, item.reason)
    } else add('problem', 'dead', item.path, `stale entry of ${item.cwd} (${item.reason}); prune deletes it`, true, item.reason)
  }
  for (const row of await registry.listInfo({ prune: false })) {
    if (row.status === 'orphan') {
      add('problem', 'orphan', row.path, `pid ${row.pid} still runs but its workspace ${row.cwd} is gone (${row.reason}); stop it with \`wsreg reap ${row.id}\``, false, row.reason ?? undefined)
    } else if (row.status === 'unknown') {
      add('note', 'unknown', row.path, `entry of ${row.cwd} cannot be judged here (${row.reason}: ${UNJUDGEABLE[row.reason ?? ''] ?? 'no identity'}); it is kept`, false, row.reason ?? undefined)
    }
  }
  // Loops, not push(...list): spreading an unbounded array overflows the stack.
  for (const finding of quarantineFindings(dir)) findings.push(finding)
  for (const finding of await lockFindings(dir)) findings.push(finding)
  for (const finding of historyFindings(dir)) findings.push(finding)
  return findings
}

/** A history file that is no regular file loses every record; one others can read shows who ran what where. */
function historyFindings(dir: string): Finding[] {
  const findings: Finding[] = []
  for (const name of readdirSync(dir)) {
    if (!HISTORY_NAME.test(name)) continue
    const path = join(dir, name)
    const file = lstatSync(path, { throwIfNoEntry: false })
    if (!file) continue
    if (!file.isFile()) {
      findings.push({ severity: 'problem', kind: 'history-file', message: 'history file is not a regular file, so no end can be recorded: remove it (the next deletion starts a new one)', path, fixable: false })
    } else if (!ours(file)) {
      findings.push({ severity: 'problem', kind: 'file-owner', message: `history file is owned by uid ${file.uid}, not by you (uid ${uid}): chown it to yourself or remove it`, path, fixable: false })
    } else if ((file.mode & 0o077) !== 0 && process.platform !== 'win32') {
      findings.push({ severity: 'problem', kind: 'file-mode', message: `history file is readable or writable by others (mode ${modeOf(file)}): chmod 600`, path, fixable: true })
    }
  }
  return findings
}

const UNJUDGEABLE: Record<string, string> = {
  'foreign-host': 'written on another machine',
  'foreign-pid-namespace': 'written from another PID namespace, such as a container',
  'identity-unreadable': 'the process exists but its identity cannot be read',
  'cwd-unverifiable': 'its cwd holds bytes that were not UTF-8, so its absence proves nothing',
  'no-proc': 'this process sees no /proc of its own PID namespace (a chroot, a sandbox, a container without /proc), so only kill(pid, 0) can be asked',
  'foreign-time-namespace': 'written from another time namespace whose clock offset cannot be read',
  'clock-skew': 'a legacy entry dated in the future, so its owner cannot be told from a later process',
  'lease-expired': 'its owner cannot be judged here and its lease has passed; it is pruned once the lease grace is over',
}

function quarantineFindings(dir: string): Finding[] {
  const folder = join(dir, QUARANTINE_DIR)
  const stat = lstatSync(folder, { throwIfNoEntry: false })
  if (!stat) return []
  // Never list (or move files into) a quarantine that is a link: it could point anywhere.
  if (!stat.isDirectory()) {
    const what = stat.isSymbolicLink() ? 'a symlink' : 'not a folder'
    return [{ severity: 'problem', kind: 'unsafe-quarantine', message: `${QUARANTINE_DIR} is ${what}, so corrupt files cannot be quarantined: remove it`, path: folder, fixable: false }]
  }
  const findings: Finding[] = []
  if ((stat.mode & 0o077) !== 0 && process.platform !== 'win32') {
    findings.push({ severity: 'problem', kind: 'dir-mode', message: `quarantine folder is open to others (mode ${modeOf(stat)}): chmod 700`, path: folder, fixable: ours(stat) })
  }
  for (const name of readdirSync(folder)) {
    findings.push({ severity: 'note', kind: 'quarantined', message: 'corrupt file kept in quarantine; inspect it and delete it by hand', path: join(folder, name), fixable: false })
  }
  return findings
}

/** Locks held now (a note), and holder records left by killed holders (harmless: the next holder replaces them). */
async function lockFindings(dir: string): Promise<Finding[]> {
  const findings: Finding[] = []
  for (const name of readdirSync(dir)) {
    const id = LOCK_FILE_NAME.exec(name)?.[1]
    if (!id) continue
    // Asked by connecting, never by binding: a doctor must not take a lock from under a starting tool.
    const state = await lockState(dir, id)
    const holder = lockHolder(dir, id)
    const path = join(dir, name)
    if (state === 'held') {
      findings.push({ severity: 'note', kind: 'lock-held', message: `workspace lock is held${holder ? ` by pid ${holder.pid} since ${holder.since}` : ''}`, path, fixable: false })
    } else if (state === 'free') {
      findings.push({ severity: 'note', kind: 'stale-lock-file', message: 'holder record left by a lock holder that was killed; harmless: the next holder replaces it and `wsreg prune` removes it', path, fixable: true })
    }
  }
  return findings
}

async function repair(registry: Registry): Promise<string[]> {
  const dir = registry.dir
  const done: string[] = []
  const chmod = (path: string, mode: number) => {
    try {
      chmodSync(path, mode)
      done.push(`chmod ${mode.toString(8)} ${path}`)
    } catch (error) {
      done.push(`could not chmod ${mode.toString(8)} ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
    }
  }
  const stat = lstatSync(dir, { throwIfNoEntry: false })
  if (!stat) return done
  if (stat.isDirectory() && ours(stat) && (stat.mode & 0o077) !== 0 && process.platform !== 'win32') chmod(dir, 0o700)
  if (dirProblem(dir)) return done
  for (const name of readdirSync(dir)) {
    if (!ENTRY_NAME.test(name) && !HISTORY_NAME.test(name)) continue
    const path = join(dir, name)
    const file = lstatSync(path, { throwIfNoEntry: false })
    if (file?.isFile() && ours(file) && (file.mode & 0o077) !== 0) chmod(path, 0o600)
  }
  const quarantine = lstatSync(join(dir, QUARANTINE_DIR), { throwIfNoEntry: false })
  if (quarantine?.isDirectory() && ours(quarantine) && (quarantine.mode & 0o077) !== 0) chmod(join(dir, QUARANTINE_DIR), 0o700)
  for (const item of await registry.prune()) {
    if (item.reason === 'corrupt') done.push(item.quarantinedTo ? `quarantined ${item.path} → ${item.quarantinedTo}` : `could not quarantine ${item.path}`)
    else if (item.reason === 'stale-temp') done.push(`swept ${item.path}`)
    else if (item.reason === 'legacy-migrated') done.push(`migrated ${item.path} → ${item.id}.json`)
    else if (item.reason === 'stale-lock') done.push(`removed ${item.path} (record of a killed lock holder)`)
    else if (item.reason === 'restored') done.push(`restored ${item.path} (left aside by a killed cleanup)`)
    else done.push(`removed ${item.path} (${item.reason})`)
  }
  return done
}
