export { RegistryError, type RegistryErrorCode } from './errors.js'
export { canonicalCwd, defaultRegistryDir, registryDirEnvName, workspaceId } from './paths.js'
export { parseEntry, serializeEntry, type Entry, type ParseResult } from './entry.js'
export { classify, status, type Status, type StatusReason, type Verdict } from './status.js'
export type { Health } from './health.js'
export {
  Registry,
  type CorruptRow,
  type EntryInfo,
  type EntryRow,
  type PruneItem,
  type PruneReason,
  type PruneReport,
  type RegistryOptions,
  type WriteInput,
} from './registry.js'
export { diagnose, type Diagnosis, type Finding, type FindingKind } from './doctor.js'
