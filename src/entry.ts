import { isUtf8 } from 'node:buffer'
import { basename, isAbsolute } from 'node:path'
import { MAX_CWD_BYTES, idOfCanonical } from './paths.js'

/** One workspace as recorded on disk (schema version 1). */
export interface Entry {
  /** Schema version. */
  version: 1
  /** `workspaceId(cwd)`, for people reading the file. */
  id: string
  /** Canonical absolute workspace root. */
  cwd: string
  /** Human label; defaults to the basename of `cwd`. */
  name: string
  /** Owner process; `0` means registered but idle. */
  pid: number
  /** Start identity of `pid` when written (Linux: `/proc/<pid>/stat` field 22), or null when unknown. */
  pidStartTime: string | null
  /** Boot identity of the machine when written (Linux: `/proc/sys/kernel/random/boot_id`). */
  bootId: string | null
  /** `os.hostname()` of the writer. */
  host: string
  /** PID namespace of the writer (Linux: inode of `/proc/self/ns/pid`); a pid means nothing in another one. */
  pidNamespace?: string | null
  /** Time namespace of the writer (Linux: inode of `/proc/self/ns/time`); start ticks read in another one are shifted. */
  timeNamespace?: string | null
  /** Service endpoint of the workspace. */
  url?: string
  /** When this workspace came up (ISO-8601 UTC); kept across rewrites by the same process. */
  startedAt: string
  /** Last write (ISO-8601 UTC). */
  updatedAt: string
  /** App-defined data, preserved verbatim. */
  meta?: Record<string, unknown>
  /**
   * Heartbeat lease (ISO-8601 UTC), written and renewed by `claim({ leaseMs })`. Decides only entries that
   * cannot be judged here (other host or PID namespace, unreadable identity): past it plus a grace, they are dead.
   */
  leaseUntil?: string
}

/** Entry files larger than this are corrupt, not read. */
export const MAX_ENTRY_BYTES = 1024 * 1024
/** Entry files whose arrays/objects nest deeper than this are corrupt: rewriting or printing them would overflow the stack. */
export const MAX_ENTRY_DEPTH = 64

const KNOWN_FIELDS = new Set([
  'version', 'id', 'cwd', 'name', 'pid', 'pidStartTime', 'bootId', 'host', 'pidNamespace', 'timeNamespace', 'url', 'startedAt', 'updatedAt', 'meta', 'leaseUntil',
])
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/
const MAX_PID = 2 ** 31 - 1

/** The outcome of parsing one entry file: an entry, or why it is not one. */
export type ParseResult =
  | {
      /** The text is a valid entry. */
      ok: true
      /** The entry, with defaults filled in and unknown fields kept. */
      entry: Entry
    }
  | {
      /** The text is not a valid entry. */
      ok: false
      /** What is wrong with it, in a few words. */
      problem: string
    }

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

// The pattern alone lets month 13 or hour 99 through; Date.parse turns those into NaN.
function isTime(value: unknown): value is string {
  return typeof value === 'string' && ISO_UTC.test(value) && !Number.isNaN(Date.parse(value))
}

function optionalString(value: unknown, max = 4096): boolean {
  return value === undefined || value === null || (typeof value === 'string' && value.length <= max)
}

// The keys of an entry as built below: the first eight always, then the optional ones in this order.
const ALWAYS = ['version', 'id', 'cwd', 'name', 'pid', 'pidStartTime', 'bootId', 'host']
const THEN = new Map(['pidNamespace', 'timeNamespace', 'url', 'startedAt', 'updatedAt', 'meta', 'leaseUntil'].map((key, rank) => [key, rank]))

/**
 * True when a validated object has exactly the keys the entry built from it would have, in the same order (so
 * nothing to default, nothing unknown to copy, and the same JSON): lists then keep the parsed object, which spares
 * a second object per entry and the garbage collection it costs.
 */
function inEntryOrder(v: Record<string, unknown>): boolean {
  let at = 0
  let rank = -1
  for (const key in v) {
    if (at < ALWAYS.length) {
      if (key !== ALWAYS[at++]) return false
      continue
    }
    const next = THEN.get(key)
    if (next === undefined || next <= rank) return false
    rank = next
  }
  return at === ALWAYS.length && v.updatedAt !== undefined
}

/**
 * Validate parsed JSON as an entry. `legacy` files (`<id>-<pid>.json`) may lack `version`,
 * `id` and the identity fields; `expectedId` (from the file name) must match the cwd's hash,
 * so a file copied or planted under another name is never mistaken for that workspace.
 */
function validateEntry(value: unknown, expectedId: string, options: { legacy?: boolean; localHost?: string } = {}): ParseResult {
  if (!isPlainObject(value)) return { ok: false, problem: 'not a JSON object' }
  const v = value
  if (v.version !== undefined && !(Number.isSafeInteger(v.version) && (v.version as number) >= 1)) {
    return { ok: false, problem: 'version is not a positive integer' }
  }
  if (v.version === undefined && !options.legacy) return { ok: false, problem: 'version is missing' }
  if (typeof v.cwd !== 'string' || !isAbsolute(v.cwd) || v.cwd.includes('\0')) {
    return { ok: false, problem: 'cwd is not an absolute path' }
  }
  // The limit write() enforces, in the same unit (UTF-8 bytes), so no reader rejects what a writer accepted.
  if (Buffer.byteLength(v.cwd) > MAX_CWD_BYTES) return { ok: false, problem: `cwd is longer than ${MAX_CWD_BYTES} bytes` }
  const id = idOfCanonical(v.cwd)
  if (id !== expectedId) return { ok: false, problem: `file name says ${expectedId} but cwd hashes to ${id}` }
  if (v.id !== undefined && v.id !== id) return { ok: false, problem: 'id does not match cwd' }
  if (typeof v.pid !== 'number' || !Number.isInteger(v.pid) || v.pid < 0 || v.pid > MAX_PID) {
    return { ok: false, problem: 'pid is not an integer between 0 and 2^31-1' }
  }
  if (v.name !== undefined && (typeof v.name !== 'string' || v.name.length > 4096)) return { ok: false, problem: 'name is not a string' }
  if (!optionalString(v.pidStartTime, 64)) return { ok: false, problem: 'pidStartTime is not a string or null' }
  if (!optionalString(v.bootId, 256)) return { ok: false, problem: 'bootId is not a string or null' }
  if (!optionalString(v.pidNamespace, 256)) return { ok: false, problem: 'pidNamespace is not a string or null' }
  if (!optionalString(v.timeNamespace, 256)) return { ok: false, problem: 'timeNamespace is not a string or null' }
  if (v.host !== undefined && (typeof v.host !== 'string' || v.host.length > 1024)) return { ok: false, problem: 'host is not a string' }
  if (!options.legacy && (v.host === undefined || v.id === undefined)) return { ok: false, problem: 'id or host is missing' }
  if (v.url !== undefined && (typeof v.url !== 'string' || v.url.length > 4096)) return { ok: false, problem: 'url is not a string' }
  if (!isTime(v.startedAt)) return { ok: false, problem: 'startedAt is not an ISO-8601 UTC time' }
  // Written once, both times are the same string: one check serves.
  if (v.updatedAt !== undefined && v.updatedAt !== v.startedAt && !isTime(v.updatedAt)) {
    return { ok: false, problem: 'updatedAt is not an ISO-8601 UTC time' }
  }
  if (v.updatedAt === undefined && !options.legacy) return { ok: false, problem: 'updatedAt is missing' }
  if (v.meta !== undefined && !isPlainObject(v.meta)) return { ok: false, problem: 'meta is not an object' }
  if (v.leaseUntil !== undefined && !isTime(v.leaseUntil)) return { ok: false, problem: 'leaseUntil is not an ISO-8601 UTC time' }

  // What a writer of this version wrote is already the entry: its own keys, in the order below, nothing to fill in.
  if (inEntryOrder(v)) return { ok: true, entry: v as unknown as Entry }
  // Build a fresh object (own data properties only) so keys such as `__proto__` stay inert data.
  const entry: Record<string, unknown> = {
    version: 1,
    id,
    cwd: v.cwd,
    name: typeof v.name === 'string' ? v.name : basename(v.cwd) || v.cwd,
    pid: v.pid,
    pidStartTime: (v.pidStartTime as string | null | undefined) ?? null,
    bootId: (v.bootId as string | null | undefined) ?? null,
    host: (v.host as string | undefined) ?? options.localHost ?? '',
  }
  if (v.pidNamespace !== undefined) entry.pidNamespace = v.pidNamespace
  if (v.timeNamespace !== undefined) entry.timeNamespace = v.timeNamespace
  if (v.url !== undefined) entry.url = v.url
  entry.startedAt = v.startedAt
  entry.updatedAt = v.updatedAt ?? v.startedAt
  if (v.meta !== undefined) entry.meta = v.meta
  if (v.leaseUntil !== undefined) entry.leaseUntil = v.leaseUntil
  for (const key of Object.keys(v)) {
    if (!KNOWN_FIELDS.has(key)) Object.defineProperty(entry, key, { value: v[key], enumerable: true, writable: true, configurable: true })
  }
  // A newer writer's version number is kept so a rewrite does not downgrade its file.
  if (typeof v.version === 'number' && v.version > 1) entry.version = v.version
  return { ok: true, entry: entry as unknown as Entry }
}

/**
 * Index of the first bracket that nests deeper than `max`, or -1. It stops there, so a hostile
 * `[[[[…` costs O(max) here and never reaches the recursive JSON.stringify of a rewrite or `--json`.
 */
export function nestingExceeds(text: string, max: number): number {
  // Nesting deeper than `max` needs more than `max` brackets: counting them runs at native speed and
  // spares the character loop for every ordinary entry (a handful of brackets).
  if (!moreThan(text, '{', '[', max)) return -1
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      i = closingQuote(text, i)
      if (i < 0) return -1 // an unterminated string: JSON.parse reports it
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return i
    } else if (c === 0x7d || c === 0x5d) {
      depth--
    }
  }
  return -1
}

function moreThan(text: string, a: string, b: string, max: number): boolean {
  let count = 0
  for (const bracket of [a, b]) {
    for (let at = text.indexOf(bracket); at >= 0; at = text.indexOf(bracket, at + 1)) if (++count > max) return true
  }
  return false
}

// indexOf skips string bodies at native speed (a char loop took 14 ms on a 1 MB string, this 0.1 ms).
function closingQuote(text: string, open: number): number {
  let at = text.indexOf('"', open + 1)
  while (at > 0) {
    let backslashes = 0
    while (text.charCodeAt(at - 1 - backslashes) === 0x5c) backslashes++
    if (backslashes % 2 === 0) return at
    at = text.indexOf('"', at + 1)
  }
  return -1
}


/** Why serialized entry text cannot be stored (too large, nested too deeply), or null when it can. */
export function entryTextProblem(text: string): string | null {
  if (Buffer.byteLength(text) > MAX_ENTRY_BYTES) return `is larger than ${MAX_ENTRY_BYTES} bytes`
  if (nestingExceeds(text, MAX_ENTRY_DEPTH) >= 0) return `nests arrays or objects deeper than ${MAX_ENTRY_DEPTH} levels`
  return null
}

/**
 * Parse the bytes (or decoded text) of an entry file. Never throws. Bytes must be UTF-8; a leading
 * byte order mark is ignored, as RFC 8259 allows (editors on Windows add one).
 */
export function parseEntry(input: string | Uint8Array, expectedId: string, options: { legacy?: boolean; localHost?: string } = {}): ParseResult {
  let text: string
  if (typeof input === 'string') {
    text = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input
  } else {
    // Bytes that are not UTF-8 make the file corrupt instead of turning into U+FFFD (which a rewrite would keep).
    if (!isUtf8(input)) return { ok: false, problem: 'is not UTF-8 text' }
    const bom = input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? 3 : 0
    text = Buffer.isBuffer(input) ? input.toString('utf8', bom) : Buffer.from(input.buffer, input.byteOffset + bom, input.byteLength - bom).toString('utf8')
  }
  if (nestingExceeds(text, MAX_ENTRY_DEPTH) >= 0) return { ok: false, problem: `nests arrays or objects deeper than ${MAX_ENTRY_DEPTH} levels` }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    return { ok: false, problem: `bad JSON (${(error as Error).message})` }
  }
  return validateEntry(value, expectedId, options)
}

/** The fields that say which process wrote an entry. */
export type Writer = Pick<Entry, 'pid' | 'pidStartTime' | 'bootId' | 'host'>

/** True when `a` and `b` name the very same process: pid, start identity, boot and host all equal. */
export function sameProcess(a: Writer, b: Writer): boolean {
  return a.pid === b.pid && a.pidStartTime === b.pidStartTime && a.bootId === b.bootId && a.host === b.host
}

/** The exact bytes written for an entry: pretty JSON, 2 spaces, trailing newline. */
export function serializeEntry(entry: Entry): string {
  return `${JSON.stringify(entry, null, 2)}\n`
}

/** The fields only the registry sets; everything else in an entry is the writer's. */
export function isKnownField(key: string): boolean {
  return KNOWN_FIELDS.has(key)
}
