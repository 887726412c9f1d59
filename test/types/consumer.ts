// Compiled (never run) by `npm run typecheck` under exactOptionalPropertyTypes, the strictest setting a consumer may use:
// the public types must hold there without casts.
import { Registry, RegistryError, isRegistryError, type Entry, type EntryRow } from '../../src/index.js'

export async function consumer(registry: Registry): Promise<void> {
  const claim = await registry.claim({ cwd: '/tmp/ws', url: 'http://127.0.0.1:3000' }, { waitMs: 0, leaseMs: 30_000, uniqueName: true })
  // Removing a field by passing undefined compiles under exactOptionalPropertyTypes.
  await claim.update({ url: undefined, meta: undefined })
  const signal: AbortSignal = claim.signal
  void signal

  // Rows need no narrowing unless all: true.
  const rows: EntryRow[] = await registry.listInfo({ probe: true })
  const status: string = rows[0]?.status ?? 'none'
  const reason: string | null | undefined = rows[0]?.reason
  void status, void reason
  const all = await registry.listInfo({ all: true })
  for (const row of all) if (row.status !== 'corrupt') void row.pid

  try {
    await registry.claim({ cwd: '/tmp/ws' })
  } catch (error) {
    // details are typed per code: the holder's entry is an Entry without a cast.
    if (isRegistryError(error, 'E_LOCKED')) {
      const holder: Entry | undefined = error.details.entry
      const pid: number | undefined = error.details.pid
      void holder, void pid
    }
    if (error instanceof RegistryError && error.is('E_NAME_TAKEN')) {
      const holder: Entry = error.details.entry
      void holder
    }
    if (error instanceof RegistryError) {
      const url: string | undefined = error.details.entry?.url
      void url
    }
  }
  {
    await using scoped = await registry.claim({ cwd: '/tmp/other' })
    void scoped.entry
  }
}
