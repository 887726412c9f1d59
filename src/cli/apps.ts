import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { Registry, RegistryError, type EntryInfo, type ListInfoOptions } from '../index.js'
import { defaultRegistryDir, registryDirEnvName } from '../paths.js'

/** A row of `ls --all-apps`: a row of one app's registry, with the app it came from. */
export type AppRow = EntryInfo & { app: string }

/**
 * The state folder: the parent of every app's default registry folder (`$XDG_STATE_HOME`, else `~/.local/state`;
 * `%LOCALAPPDATA%` on Windows). An `<APP>_REGISTRY_DIR` override moves one app's registry, never the state folder.
 */
export function stateFolder(env: NodeJS.ProcessEnv = process.env): string {
  const app = 'wsreg'
  return dirname(dirname(defaultRegistryDir(app, { ...env, [registryDirEnvName(app)]: undefined })))
}

/** Every app's rows under the state folder (`<state>/<app>/workspaces`), sorted by app; a registry that fails is reported, not fatal. */
export async function allAppsRows(options: ListInfoOptions, report: (app: string, error: RegistryError) => void): Promise<{ state: string; rows: AppRow[] }> {
  const state = stateFolder()
  let apps: string[] = []
  try {
    apps = readdirSync(state, { withFileTypes: true })
      .filter((item) => item.isDirectory() && folderHas(join(state, item.name), 'workspaces'))
      .map((item) => item.name)
      .sort()
  } catch {
    apps = [] // no state folder yet: no apps
  }
  const rows: AppRow[] = []
  for (const app of apps) {
    try {
      const registry = new Registry({ app, dir: join(state, app, 'workspaces') })
      for (const row of await registry.listInfo(options)) rows.push({ ...row, app })
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error
      report(app, error)
    }
  }
  return { state, rows }
}

function folderHas(folder: string, name: string): boolean {
  try {
    return readdirSync(folder).includes(name)
  } catch {
    return false
  }
}
