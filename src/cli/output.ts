import type { EntryInfo } from '../index.js'

/** Where a command writes: data to `out`, messages to `err`. */
export interface Output {
  out: NodeJS.WritableStream & { isTTY?: boolean }
  err: NodeJS.WritableStream
  /** ANSI colour allowed (a TTY and no `NO_COLOR`). */
  color: boolean
}

/** Colour only on a TTY, and never when NO_COLOR is set to anything (https://no-color.org). */
export function wantsColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(stream.isTTY) && !env.NO_COLOR && env.TERM !== 'dumb'
}

const CODES: Record<string, [number, number]> = {
  green: [32, 39],
  yellow: [33, 39],
  red: [31, 39],
  magenta: [35, 39],
  dim: [2, 22],
  bold: [1, 22],
}

/** Wrap `text` in an ANSI style when colour is on. */
export function paint(output: Output, style: keyof typeof CODES, text: string): string {
  const code = CODES[style]
  return output.color && code ? `\u001b[${code[0]}m${text}\u001b[${code[1]}m` : text
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

// Visible width, ignoring ANSI escapes.
function width(text: string): number {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, '').length
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function table(header: string[], rows: string[][], output: Output): string {
  const all = [header.map((cell) => paint(output, 'bold', cell)), ...rows]
  const widths = header.map((_, column) => Math.max(...all.map((row) => width(row[column] ?? ''))))
  return all
    .map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell + ' '.repeat((widths[column] ?? 0) - width(cell)))).join('  ').trimEnd())
    .join('\n')
}

/** The human table of `wsreg ls`: name, status, pid, uptime, cwd, url (and health when probed). */
export function entryTable(rows: EntryInfo[], output: Output, options: { health?: boolean; host?: boolean } = {}): string {
  const header = ['NAME', 'STATUS', 'PID', 'UPTIME', ...(options.host ? ['HOST'] : []), ...(options.health ? ['HEALTH'] : []), 'CWD', 'URL']
  const body = rows.map((row) => {
    if (row.status === 'corrupt') {
      return [row.id, statusWord(output, 'corrupt'), '-', '-', ...(options.host ? ['-'] : []), ...(options.health ? ['-'] : []), row.path, row.problem]
    }
    const health = row.health ? paint(output, row.health === 'up' ? 'green' : 'red', row.health) : '-'
    return [
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

/** Print one JSON document (2-space indent) on stdout. */
export function printJson(output: Output, value: unknown): void {
  output.out.write(`${JSON.stringify(value, null, 2)}\n`)
}
