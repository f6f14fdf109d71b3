/**
 * How a broker starts its detached refresh workers (B3): the file store's (broker/worker.ts, the
 * lock handed over) and a shared store's (broker/shared-worker.ts, the lease handed over). Both
 * only when the worker is there to start and the caller allows it.
 *
 * Owns: wiring the launchers. Must not: refresh.
 */
import type { Env, Paths } from '../config/paths.js'
import type { Settings } from '../config/settings.js'
import type { ChoiceInputs } from './store-choice.js'
import { startWorker, workerAvailable } from './worker.js'
import { startSharedWorker } from './shared-worker.js'

export interface LauncherInputs {
  env: Env
  paths: Paths
  settings: () => Promise<Settings>
  /** an encrypted file store's unlocked keys */
  keys: () => ReadonlyMap<string, Buffer> | undefined
  /** the caller allows a worker (isolateRefresh, no custom fetch) */
  use: () => boolean
}

export function workerLaunchers(i: LauncherInputs): Pick<ChoiceInputs, 'worker' | 'sharedWorker'> {
  const on = (): boolean => i.use() && workerAvailable()
  return {
    worker: async (id, lock, req) => {
      if (!on()) return 'not-started'
      const launch = { env: i.env, paths: i.paths, settings: await i.settings() }
      return startWorker({ ...launch, keys: i.keys() }, id, lock, req)
    },
    sharedWorker: (store) => async (lease, req, budgetMs) => {
      if (!on()) return 'not-started'
      const launch = { env: i.env, paths: i.paths, settings: await i.settings(), store }
      return startSharedWorker(launch, lease, req, budgetMs)
    },
  }
}
