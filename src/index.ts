export { RegistryError, isRegistryError, type LockedDetails, type NameTakenDetails, type RegistryErrorCode, type RegistryErrorDetails } from './errors.js'
export { canonicalCwd, defaultRegistryDir, registryDirEnvName, workspaceId } from './paths.js'
export { parseEntry, serializeEntry, type Entry, type ParseResult } from './entry.js'
export { classify, status, type Status, type StatusReason, type Verdict } from './status.js'
export type { Health } from './health.js'
export {
  Registry,
  type CorruptRow,
  type EntryInfo,
  type EntryRow,
  type HistoryOptions,
  type ListInfoOptions,
  type RegistryOptions,
  type WriteInput,
} from './registry.js'
export type { HistoryEvent, HistoryRecord } from './history.js'
export type { PruneItem, PruneReason, PruneReport } from './scan.js'
export { diagnose, type Diagnosis, type Finding, type FindingKind } from './doctor.js'
export { type LockHolder, type LockOptions } from './lock.js'
export { type ReapOptions, type ReapOutcome, type ReapResult } from './reap.js'
export { type Claim, type ClaimInput, type ClaimOptions, type ClaimPatch } from './claim.js'

export { RegistryWatcher, type WatchOptions } from './watch.js'
export type { RegistryWatcherEvents } from './events.js'
export type { ChangeEvent, DownEvent, DownReason, ReadyEvent, RegistryEvent, UpEvent, WatchedEntry, ErrorEvent } from './transition.js'

export { fileTreeStore, type DeleteOutcome, type EntryStore, type EventSource, type StoredEntry } from './fleet/seam.js'
// The fleet (EtcdStore, publish, FleetWatcher) is the `workspace-registry/fleet` subpath: its client, etcd3, is an optional peer.
