import type { EventEmitter } from 'node:events'
import type { ChangeEvent, DownEvent, ReadyEvent, RegistryEvent, UpEvent } from './transition.js'

/** What a watcher emits: event name → listener arguments (shared by the folder and the fleet watcher). */
export interface RegistryWatcherEvents {
  /** Once, after the first scan, with the initial snapshot. */
  ready: [event: ReadyEvent]
  /** A workspace became running. */
  up: [event: UpEvent]
  /** A running workspace stopped running. */
  down: [event: DownEvent]
  /** Same owner, other content or a status that is neither up nor down. */
  change: [event: ChangeEvent]
  /** An unexpected failure; the watcher keeps going. With no listener it is dropped, never thrown (the folder watcher still hands it to `errorMonitor` listeners). */
  error: [error: Error]
  /** The watcher was closed. */
  close: []
}

const DATA_EVENTS = ['ready', 'up', 'down', 'change'] as const

/**
 * Turn a watcher's events into an async iterator: events queue up until read, the iteration ends once the
 * watcher is closed and drained, and leaving a `for await` loop early closes the watcher. Calls to `next()`
 * that overlap are served in the order they were made.
 */
export function iterateEvents(watcher: EventEmitter<RegistryWatcherEvents> & { close(): Promise<void> }, isClosed: () => boolean): AsyncIterator<RegistryEvent> {
  // At most one of these is non-empty: events wait for readers, or readers wait for events.
  const queue: RegistryEvent[] = []
  const readers: Array<(result: IteratorResult<RegistryEvent>) => void> = []
  const push = (event: RegistryEvent): void => {
    const reader = readers.shift()
    if (reader) reader({ done: false, value: event })
    else queue.push(event)
  }
  const onError = (error: Error): void => push({ type: 'error', error })
  const end = (): void => {
    for (const name of DATA_EVENTS) watcher.off(name, push)
    watcher.off('error', onError).off('close', end)
    for (const reader of readers.splice(0)) reader({ done: true, value: undefined })
  }
  for (const name of DATA_EVENTS) watcher.on(name, push)
  watcher.on('error', onError).on('close', end)
  return {
    next: async () => {
      const event = queue.shift()
      if (event) return { done: false, value: event }
      if (isClosed()) {
        end()
        return { done: true, value: undefined }
      }
      return new Promise((resolve) => readers.push(resolve))
    },
    return: async () => {
      end()
      await watcher.close()
      return { done: true, value: undefined }
    },
  }
}
