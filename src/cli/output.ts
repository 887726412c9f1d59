import { randomBytes } from 'node:crypto'
import type { EntryInfo } from '../index.js'

/** Where a command writes: data to `out`, messages to `err`. */
export interface Output {
  out: NodeJS.WritableStream & { isTTY?: boolean }
  err: NodeJS.WritableStream
  /** ANSI colour allowed (see {@link wantsColor}). */
  color: boolean
}

/**
 * Node's `util.styleText` rules (lib/internal/tty.js): `FORCE_COLOR` decides when set, even into a pipe and
 * over `NO_COLOR` (`''`, `1`, `true`, `2`, `3` on; anything else, such as `0`, off); else `NO_COLOR`,
 * `NODE_DISABLE_COLORS` or `TERM=dumb` turn colour off; else only a TTY gets colour. Written out rather than
 * asking `styleText`, whose stream check is missing from the Node 20.19 this package supports.
 */
export function wantsColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.FORCE_COLOR !== undefined) return ['', '1', 'true', '2', '3'].includes(env.FORCE_COLOR)
  if (env.NO_COLOR !== undefined || env.NODE_DISABLE_COLORS !== undefined || env.TERM === 'dumb') return false
  return Boolean(stream.isTTY)
}

const CODES: Record<string, [number, number]> = {
  green: [32, 39],
  yellow: [33, 39],
  red: [31, 39],
  magenta: [35, 39],
  dim: [2, 22],
  bold: [1, 22],
}

// Text from entries (name, cwd, url, meta, problems) must never drive the terminal (DESIGN.md §4). Our own
// escapes are written as a per-process random token that no planted text can know; the writer made by
// terminalOutput() escapes every control character in what is written, then turns the token into ESC.
const ESC_TOKEN = `\u{F8FF}${randomBytes(8).toString('hex')}\u{F8FF}`
const ESC_TOKENS = new RegExp(ESC_TOKEN, 'g')

// C0 and C1 controls, DEL, line/paragraph separators and bidi embeddings/overrides/isolates.
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/gu
// eslint-disable-next-line no-control-regex
const CONTROLS_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/gu
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\u001b': '\\e' }

function visible(char: string): string {
  const code = char.codePointAt(0) ?? 0
  return NAMED[char] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`)
}

/**
 * Make `text` inert on a terminal: every control character (C0 including newline, DEL, C1, bidi controls,
 * line separators) becomes a visible escape such as `\e`, `\n`, `\x9b` or `\u{202e}`. The one escaping
 * function of the CLI; `keepNewlines` is for whole output chunks, whose line breaks are ours.
 */
export function escapeControls(text: string, keepNewlines = false): string {
  return text.replace(keepNewlines ? CONTROLS_BUT_NEWLINE : CONTROLS, visible)
}

/**
 * The output the commands write to: human text is escaped as it is written (the single place, so no
 * command can forget it) and only our own styles become escapes. JSON goes through {@link printJson}.
 */
export function terminalOutput(output: Output): Output {
  const guard = (stream: NodeJS.WritableStream) => {
    const write = (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
      return (stream.write as (chunk: string, ...rest: unknown[]) => boolean)(escapeControls(text, true).replace(ESC_TOKENS, '\u001b'), ...rest)
    }
    return new Proxy(stream, {
      get(target, key) {
        if (key === 'write') return write
        const value: unknown = Reflect.get(target, key, target)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
  }
  return { ...output, out: guard(output.out), err: guard(output.err) }
}

/** Wrap `text` in an ANSI style when colour is on. */
export function paint(output: Output, style: keyof typeof CODES, text: string): string {
  const code = CODES[style]
  return output.color && code ? `${ESC_TOKEN}[${code[0]}m${text}${ESC_TOKEN}[${code[1]}m` : text
}

/** Home the cursor and clear the screen (for redrawing a table), through the guarded writer. */
export const CLEAR_SCREEN = `${ESC_TOKEN}[H${ESC_TOKEN}[2J`

/** One line of text from an entry, inline: its newlines and controls escaped so it cannot forge rows. */
export function inline(value: unknown): string {
  return escapeControls(String(value))
}

const STATUS_STYLE: Record<string, keyof typeof CODES> = {
  alive: 'green',
  idle: 'dim',
  orphan: 'yellow',
  unknown: 'magenta',
  dead: 'red',
  gone: 'red',
  corrupt: 'red',
}

/** A status word, coloured by how much it needs attention. */
export function statusWord(output: Output, status: string): string {
  return paint(output, STATUS_STYLE[status] ?? 'bold', status)
}

/** Compact age such as `42s`, `5m12s`, `2h05m`, `3d04h`. */
export function formatUptime(since: string, now = Date.now()): string {
  const seconds = Math.max(0, Math.floor((now - Date.parse(since)) / 1000))
  if (!Number.isFinite(seconds)) return '-'
  const pad = (n: number) => String(n).padStart(2, '0')
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${pad(seconds % 60)}s`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h${pad(Math.floor(seconds / 60) % 60)}m`
  return `${Math.floor(seconds / 86400)}d${pad(Math.floor(seconds / 3600) % 24)}h`
}

const STYLES = new RegExp(`${ESC_TOKEN}\\[[0-9;]*m`, 'g')

// East Asian Wide and Fullwidth blocks (Hangul Jamo, CJK, kana, Hangul syllables, compatibility ideographs,
// fullwidth forms, the supplementary ideographic planes): two terminal columns each.
const WIDE = /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{20000}-\u{3fffd}]|\p{Emoji_Presentation}|\ufe0f/u
// Marks and joiners that add no column of their own.
const ZERO = /^[\p{Mn}\p{Me}\u200b-\u200d\ufe00-\ufe0e]*$/u
const ASCII = /^[\x20-\x7e]*$/
let graphemes: Intl.Segmenter | undefined

/** Terminal columns of `text` (our styles ignored): a wide (CJK) or emoji character takes two, a combining mark none. */
export function displayWidth(text: string): number {
  const plain = text.replace(STYLES, '')
  if (ASCII.test(plain)) return plain.length
  graphemes ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' })
  let columns = 0
  for (const { segment } of graphemes.segment(plain)) columns += WIDE.test(segment) ? 2 : ZERO.test(segment) ? 0 : 1
  return columns
}

/** Left-aligned columns separated by two spaces; the last column is not padded. Cells are escaped inline. */
export function table(header: string[], rows: string[][], output: Output): string {
  const all = [header.map((cell) => paint(output, 'bold', cell))]
  // Loops, not Math.max(...cells) or push(...rows): spreading an unbounded array overflows the stack.
  for (const row of rows) all.push(row.map(inline))
  const widths = header.map(() => 0)
  for (const row of all) {
    for (let column = 0; column < widths.length; column++) widths[column] = Math.max(widths[column] ?? 0, displayWidth(row[column] ?? ''))
  }
  return all
    .map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell + ' '.repeat((widths[column] ?? 0) - displayWidth(cell)))).join('  ').trimEnd())
    .join('\n')
}

/** The human table of `wsreg ls`: name, status, pid, uptime, cwd, url (and app, id, host, health when asked for). */
export function entryTable(rows: Array<EntryInfo & { app?: string }>, output: Output, options: { health?: boolean; host?: boolean; id?: boolean; app?: boolean } = {}): string {
  const header = [...(options.app ? ['APP'] : []), ...(options.id ? ['ID'] : []), 'NAME', 'STATUS', 'PID', 'UPTIME', ...(options.host ? ['HOST'] : []), ...(options.health ? ['HEALTH'] : []), 'CWD', 'URL']
  const body = rows.map((row) => {
    const lead = [...(options.app ? [row.app ?? '-'] : []), ...(options.id ? [row.id] : [])]
    if (row.status === 'corrupt') {
      return [...lead, row.id, statusWord(output, 'corrupt'), '-', '-', ...(options.host ? ['-'] : []), ...(options.health ? ['-'] : []), row.path, row.problem]
    }
    const health = row.health ? paint(output, row.health === 'up' ? 'green' : 'red', row.health) : '-'
    return [
      ...lead,
      row.name,
      statusWord(output, row.status),
      String(row.pid),
      row.pid === 0 ? '-' : formatUptime(row.startedAt),
      ...(options.host ? [row.host] : []),
      ...(options.health ? [health] : []),
      row.cwd,
      row.url ?? '',
    ]
  })
  return table(header, body, output)
}

// JSON.stringify leaves C1, bidi and separator characters raw; as \\u escapes they parse back to the exact value.
const JSON_UNSAFE = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/gu

/** `value` as JSON that is exact when parsed and inert on a terminal (one line unless `indent`). */
export function json(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(JSON_UNSAFE, (char) => `\\u${(char.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`)
}

/** Print one JSON document (2-space indent) on stdout. */
export function printJson(output: Output, value: unknown): void {
  output.out.write(`${json(value, 2)}\n`)
}
