// Fixture registries: real owner processes with real identities, real workspace folders.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, mkdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'

const owners = new Set()

/** Live owners at every size (and as many dead ones): 1 entry each at N = 100, 1,000 at N = 100,000. */
export const OWNERS = 100

/** Start `count` live owner processes (`sleep`: tiny, real pids with real start times). */
export async function startOwners(count) {
  const started = []
  for (let i = 0; i < count; i++) {
    const child = spawn('sleep', ['3600'], { stdio: 'ignore' })
    owners.add(child)
    child.once('exit', () => owners.delete(child))
    started.push(child)
  }
  await Promise.all(started.map((child) => new Promise((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
  })))
  return started.map((child) => ({ child, pid: child.pid, startTime: startTicks(child.pid) }))
}

/** Kill owners we started (one by one, by pid) and wait until they are gone. */
export async function stopOwners(list) {
  await Promise.all(list.map(({ child }) => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', resolve)
    child.kill('SIGKILL')
  })))
}

/** Last-resort cleanup on exit: every owner this process started. */
export function killAllStarted() {
  for (const child of owners) child.kill('SIGKILL')
}

function startTicks(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'latin1')
  return text.slice(text.lastIndexOf(')') + 2).split(' ')[19]
}

const machine = {
  bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim(),
  host: hostname(),
  pidNamespace: /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? null,
}

/** `count` real workspace folders under `root/ws`, canonical paths. */
export function makeWorkspaces(root, count) {
  const base = join(root, 'ws')
  mkdirSync(base, { recursive: true })
  const cwds = []
  for (let i = 0; i < count; i++) {
    const cwd = join(base, `project-${String(i).padStart(5, '0')}`)
    mkdirSync(cwd, { recursive: true })
    cwds.push(realpathSync(cwd))
  }
  return cwds
}

export function idOf(cwd) {
  return createHash('sha256').update(cwd, 'utf8').digest('hex').slice(0, 16)
}

/** The bytes a registry writer produces for `cwd` owned by `owner`. */
export function entryBytes(cwd, owner, index) {
  const now = new Date(Date.now() - 60_000 + index).toISOString()
  const entry = {
    version: 1,
    id: idOf(cwd),
    cwd,
    name: `project-${String((index * 7919) % 100_000).padStart(5, '0')}`, // names not in folder order, so sorting does work
    pid: owner.pid,
    pidStartTime: owner.startTime,
    bootId: machine.bootId,
    host: machine.host,
    pidNamespace: machine.pidNamespace,
    url: `http://127.0.0.1:${3000 + (index % 1000)}`,
    startedAt: now,
    updatedAt: now,
    meta: { team: `t${index % 17}`, agents: index % 5 },
  }
  return `${JSON.stringify(entry, null, 2)}\n`
}

/** (Re)build a registry folder of one entry per cwd, owners spread round-robin. */
export function buildRegistry(dir, cwds, ownerList) {
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  chmodSync(dir, 0o700)
  cwds.forEach((cwd, index) => {
    writeFileSync(join(dir, `${idOf(cwd)}.json`), entryBytes(cwd, ownerList[index % ownerList.length], index), { mode: 0o600 })
  })
}
