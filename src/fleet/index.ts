export { fileTreeStore, type DeleteOutcome, type EntryStore, type EventSource, type StoredEntry } from './seam.js'
export { EtcdStore, parseStoreUrl, type AgentRecord, type EtcdStoreEvents, type EtcdStoreOptions, type FleetLock, type HostKey, type Listing, type StoreAddress } from './etcd.js'
export { FleetWatcher, type FleetWatchOptions } from './watch.js'
export { publish, type PublishOptions, type Publisher } from './publish.js'
