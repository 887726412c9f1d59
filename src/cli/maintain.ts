import { diagnose } from '../doctor.js'
import { EXIT, expectPositionals, notFound, type Command } from './command.js'
import { recordedEntries, resolveRef } from './ref.js'
import { inline, paint, printJson } from './output.js'

/** `wsreg rm`: remove a workspace entry. */
export const rm: Command = {
  usage: 'wsreg rm <id|cwd|name>',
  summary: 'remove a workspace entry (its process is not touched)',
  async run(context) {
    expectPositionals(context, 1, 1, rm.usage)
    const registry = await context.registry()
    const entry = await resolveRef(context.positionals[0] as string, recordedEntries(registry))
    const removed = entry ? await registry.removeId(entry.id) : false
    if (context.json) printJson(context.output, { removed })
    if (!removed) return notFound(context, registry, context.positionals[0])
    if (!context.json) context.output.err.write(`Removed ${context.positionals[0]}\n`)
    return EXIT.ok
  },
}

/** `wsreg prune`: delete dead entries, quarantine corrupt files, sweep temp debris. */
export const prune: Command = {
  usage: 'wsreg prune [--dry-run] [--json]',
  summary: 'delete dead entries, quarantine corrupt files, sweep temp debris',
  options: {
    'dry-run': { type: 'boolean', short: 'n', help: 'Say what would be deleted, quarantined or swept, and change nothing.', example: 'wsreg prune --dry-run' },
  },
  async run(context) {
    expectPositionals(context, 0, 0, prune.usage)
    const registry = await context.registry()
    const dryRun = Boolean(context.values['dry-run'])
    const report = await registry.prune({ dryRun })
    if (context.json) {
      printJson(context.output, report)
      return EXIT.ok
    }
    const verb = dryRun ? 'would ' : ''
    for (const item of report) {
      const what = item.reason === 'corrupt' ? `${verb}quarantine` : item.reason === 'legacy-migrated' ? `${verb}migrate` : `${verb}remove`
      context.output.out.write(`${what} ${inline(item.path)} (${item.reason}${item.problem ? `: ${inline(item.problem)}` : ''})\n`)
    }
    context.output.err.write(`${report.length === 0 ? 'Nothing to prune' : `${report.length} file(s) ${dryRun ? 'would be ' : ''}handled`} in ${registry.dir}\n`)
    return EXIT.ok
  },
}

/** `wsreg doctor`: check the registry; `--fix` makes the safe repairs. */
export const doctor: Command = {
  usage: 'wsreg doctor [--fix] [--json]',
  summary: 'check the registry folder; --fix makes only the safe repairs (chmod, prune, quarantine, sweep)',
  options: {
    fix: { type: 'boolean', help: 'Make the safe repairs (chmod, prune, quarantine, sweep); exit 1 while problems remain.', example: 'wsreg doctor --fix' },
  },
  async run(context) {
    expectPositionals(context, 0, 0, doctor.usage)
    const registry = await context.registry()
    const diagnosis = await diagnose(registry, { fix: Boolean(context.values.fix) })
    if (context.json) {
      printJson(context.output, diagnosis)
    } else {
      const { out } = context.output
      for (const line of diagnosis.fixed) out.write(`${paint(context.output, 'green', 'fixed')}    ${inline(line)}\n`)
      if (context.values.fix && diagnosis.fixed.length === 0) context.output.err.write('Nothing needed a safe repair\n')
      for (const finding of diagnosis.findings) {
        const label = finding.severity === 'problem' ? paint(context.output, 'red', 'problem') : paint(context.output, 'dim', 'note   ')
        out.write(`${label}  ${inline(finding.path)}: ${inline(finding.message)}${finding.fixable ? ' [--fix repairs]' : ''}\n`)
      }
      context.output.err.write(diagnosis.healthy ? `Registry ${registry.dir} is healthy\n` : `Problems remain in ${registry.dir}\n`)
    }
    return diagnosis.healthy ? EXIT.ok : EXIT.failure
  },
}
