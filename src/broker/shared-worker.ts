/**
 * B3 on a shared store: the process that holds an account's lease hands the refresh to a small
 * detached worker (the same refresh-worker.js entry as the file store's), so `kill -9` of a
 * `mailkey token` that a mail client gave up on cannot drop a rotated refresh token: the worker
 * carries on under the same lease (its fence) and writes the answer. Only the death of the whole
 * host (worker included) leaves an unfinished intent for the next host (docs/adr/0011).
 *
 * The worker opens the store from the same URL and key file as its parent (handed over in its
 * environment: a URL may hold a password, and argv is public), checks that the row
 * still carries the parent's fence (else it is not its refresh any more), refreshes with the
 * parent's settings snapshot and deadline, writes under the fence and gives the lease up.
 *
 * Owns: both ends of the shared hand-off. Must not: print.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { resolveSettings, type Settings } from '../config/settings.js'
import { resolvePaths, type Env, type Paths } from '../config/paths.js'
import { ConfigFile } from '../config/config-file.js'
import { sharedSetting } from './store-choice.js'
import { sleep } from '../core/wait.js'
import { isFenced, type Lease, type SharedStore } from '../store/shared/shared-store.js'
import { refreshUnderLock, type RefreshRequest } from './refresh.js'
import type { WorkerOutcome } from './fenced-flight.js'
import { isStoreUnavailable } from '../errors.js'
import type { ResourceName } from '../domain/account.js'

/** the worker's exit code when the store could not be reached (sysexits EX_TEMPFAIL) */
const UNAVAILABLE_EXIT = 75

const WORKER = fileURLToPath(new URL('./refresh-worker.js', import.meta.url))

/** What the worker is told on its command line (no secrets: the key is in its key file). */
export interface SharedWorkerArgs {
  kind: 'shared'
  id: string
  fence: number
  force: boolean
  since: number
  minSec: number
  /** ms the refresh may take (shorter than the lease) */
  budgetMs: number
  cutOffRefreshBy?: string
  resource?: ResourceName
  settings: Settings
}

export interface SharedLaunch {
  env: Env
  paths: Paths
  settings: Settings
  store: { url: string; keyFile?: string; leaseSec?: number }
}

/** Start the worker under `lease`; resolves once it has ended ('not-started': refresh here). */
export async function startSharedWorker(
  launch: SharedLaunch,
  lease: Lease,
  req: RefreshRequest,
  budgetMs: number,
): Promise<WorkerOutcome> {
  const args: SharedWorkerArgs = {
    kind: 'shared',
    id: lease.id,
    fence: lease.fence,
    force: req.force,
    since: req.since,
    minSec: req.minSec,
    budgetMs,
    ...(req.cutOffRefreshBy ? { cutOffRefreshBy: req.cutOffRefreshBy } : {}),
    ...(req.resource ? { resource: req.resource } : {}),
    settings: launch.settings,
  }
  // the store's URL may hold a password: it goes through the environment (private to this user),
  // never the command line (`ps` shows that to everyone)
  const env = {
    ...launch.env,
    MAILKEY_STATE_DIR: launch.paths.stateDir,
    MAILKEY_CONFIG: launch.paths.configFile,
    MAILKEY_STORE_URL: launch.store.url,
    ...(launch.store.keyFile ? { MAILKEY_STORE_KEY_FILE: launch.store.keyFile } : {}),
    ...(launch.store.leaseSec ? { MAILKEY_STORE_LEASE_SEC: String(launch.store.leaseSec) } : {}),
  }
  return await new Promise((resolve) => {
    let child
    try {
      child = spawn(process.execPath, [WORKER, JSON.stringify(args)], {
        detached: true,
        stdio: 'ignore',
        env: env as NodeJS.ProcessEnv,
      })
    } catch {
      resolve('not-started')
      return
    }
    child.once('error', () => resolve('not-started'))
    // not unref'd: this process waits for the worker; if this process dies, the worker carries on
    child.once('exit', (code) => resolve(code === UNAVAILABLE_EXIT ? 'unavailable' : 'done'))
  })
}

/** The worker's entry for a shared store: 0 when done or not ours, 1 when the refresh failed (recorded). */
export async function runSharedWorker(a: SharedWorkerArgs): Promise<number> {
  const env = process.env
  const { openSharedStore } = await import('../store/shared/open-shared.js')
  const setting = await sharedSetting(env, new ConfigFile(resolvePaths(env).configFile))
  if (!setting) return 1 // cannot happen: the parent set MAILKEY_STORE_URL
  const store = await openSharedStore({ env, ...setting })
  try {
    let lease: Lease | undefined
    try {
      lease = await adopt(store, a)
    } catch (e) {
      return isStoreUnavailable(e) ? UNAVAILABLE_EXIT : 1
    }
    if (!lease) return 0 // the lease moved on: not ours to refresh
    const settings = resolveSettings(a.settings, env, undefined)
    const ctx = { store, settings, now: Date.now, sleep, random: Math.random }
    const req: RefreshRequest = {
      force: a.force,
      since: a.since,
      minSec: a.minSec,
      signal: AbortSignal.timeout(a.budgetMs),
      ...(a.cutOffRefreshBy ? { cutOffRefreshBy: a.cutOffRefreshBy } : {}),
      ...(a.resource ? { resource: a.resource } : {}),
    }
    try {
      await store.runHolding(lease, () => refreshUnderLock(ctx, a.id, req))
      return 0
    } catch (e) {
      if (isStoreUnavailable(e)) return UNAVAILABLE_EXIT
      // fenced off, or failed after another host took over (a pause outlived the lease)
      if (isFenced(e) || (await store.fenceMoved(lease))) await store.log(lease, 'fenced').catch(() => undefined)
      return 1 // the outcome is in the row
    } finally {
      await store.release(lease).catch(() => undefined)
    }
  } finally {
    // bounded: closing a connection that was cut off waits for the network to give up on it
    await Promise.race([store.close(), sleep(500)])
  }
}

async function adopt(store: SharedStore, a: SharedWorkerArgs): Promise<Lease | undefined> {
  const row = await store.row(a.id)
  if (!row || row.fence !== a.fence) return undefined
  const lease: Lease = { id: a.id, fence: a.fence, version: row.version, owner: store.owner, row, purpose: 'refresh' }
  if (a.cutOffRefreshBy) lease.intent = { fence: a.fence, owner: a.cutOffRefreshBy, at: 0 }
  return lease
}
