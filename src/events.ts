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
  /** An unexpected failure; the watcher keeps going. */
  error: [error: Error]
  /** The watcher was closed. */
  close: []
}

const DATA_EVENTS = ['ready', 'up', 'down', 'change'] as const

/**
 * Turn a watcher's events into an async iterator: events queue up until read, the iteration ends once the
 * watcher is closed and drained, and leaving a `for await` loop early closes the watcher.
 */
export function iterateEvents(watcher: EventEmitter<RegistryWatcherEvents> & { close(): Promise<void> }, isClosed: () => boolean): AsyncIterator<RegistryEvent> {
  const queue: RegistryEvent[] = []
  let wake: (() => void) | undefined
  const push = (event: RegistryEvent): void => {
    queue.push(event)
    wake?.()
  }
  const onError = (error: Error): void => push({ type: 'error', error })
  const onClose = (): void => wake?.()
  const detach = (): void => {
    for (const name of DATA_EVENTS) watcher.off(name, push)
    watcher.off('error', onError).off('close', onClose)
  }
  for (const name of DATA_EVENTS) watcher.on(name, push)
  watcher.on('error', onError).on('close', onClose)
  return {
    next: async () => {
      while (queue.length === 0) {
        if (isClosed()) {
          detach()
          return { done: true, value: undefined }
        }
        await new Promise<void>((resolve) => (wake = resolve))
        wake = undefined
      }
      return { done: false, value: queue.shift() as RegistryEvent }
    },
    return: async () => {
      detach()
      await watcher.close()
      return { done: true, value: undefined }
    },
  }
}
