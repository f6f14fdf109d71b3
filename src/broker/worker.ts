/**
 * B3, both ends of the hand-off: the process that holds an account lock starts a small detached
 * worker (refresh-worker.ts) and hands it the lock, so `kill -9` of the caller in the middle of a
 * refresh cannot drop a rotated refresh token on the floor; the worker adopts the lock, refreshes
 * with its parent's settings snapshot, writes the record and releases. The outcome is in the
 * record, where every waiting process reads it.
 *
 * Owns: starting the worker, handing it the lock and an encrypted store's keys (stdin, never argv
 * or the environment), and the worker's entry. Must not: print.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { decodeKeyMap, encodeKeyMap } from '../store/protection.js'
import { openStore } from '../store/open.js'
import { adoptLock, readLock, type LockHandle } from '../store/lock.js'
import { sleep } from '../core/wait.js'
import { isExeEntry } from '../core/exe.js'
import { resolvePaths, type Env, type Paths } from '../config/paths.js'
import { ConfigFile } from '../config/config-file.js'
import { resolveSettings, type Settings } from '../config/settings.js'
import { refreshUnderLock, type RefreshRequest } from './refresh.js'
import { runSharedWorker, type SharedWorkerArgs } from './shared-worker.js'
import type { ResourceName } from '../domain/account.js'

const WORKER = fileURLToPath(new URL('./refresh-worker.js', import.meta.url))

/** What the worker is told on its command line (no secrets). */
interface WorkerArgs {
  id: string
  lockPath: string
  nonce: string
  force: boolean
  since: number
  minSec: number
  resource?: ResourceName
  settings: Settings
  /** the store's unlocked keys follow on stdin */
  keys?: boolean
}

export interface WorkerLaunch {
  env: Env
  paths: Paths
  settings: Settings
  /** an encrypted store's unlocked data keys */
  keys: ReadonlyMap<string, Buffer> | undefined
}

/** Is the worker there to start (dist/, or an entry of the single-file executable; not from sources)? */
export function workerAvailable(): boolean {
  return existsSync(WORKER) || isExeEntry(WORKER)
}

/** Start the worker and hand it the lock. Resolves once it has finished (or died); 'not-started': refresh here. */
export async function startWorker(
  launch: WorkerLaunch,
  id: string,
  lock: LockHandle,
  req: RefreshRequest,
): Promise<'done' | 'not-started'> {
  const handKeys = launch.keys !== undefined && launch.keys.size > 0
  const args: WorkerArgs = {
    id,
    lockPath: lock.path,
    nonce: lock.nonce,
    force: req.force,
    since: req.since,
    minSec: req.minSec,
    ...(req.resource ? { resource: req.resource } : {}),
    settings: launch.settings,
    ...(handKeys ? { keys: true } : {}),
  }
  const env = { ...launch.env, MAILKEY_STATE_DIR: launch.paths.stateDir, MAILKEY_CONFIG: launch.paths.configFile }
  await lock.beginHandoff() // L4: if this process dies before the worker's pid is in the lock, it is not stale
  return await new Promise<'done' | 'not-started'>((resolve) => {
    let child
    try {
      child = spawn(process.execPath, [WORKER, JSON.stringify(args)], {
        detached: true,
        stdio: [handKeys ? 'pipe' : 'ignore', 'ignore', 'ignore'],
        env: env as NodeJS.ProcessEnv,
      })
    } catch {
      resolve('not-started')
      return
    }
    if (handKeys && child.stdin) {
      child.stdin.on('error', () => {
        /* the worker died; the exit handler below decides */
      })
      child.stdin.end(encodeKeyMap(launch.keys as ReadonlyMap<string, Buffer>))
    }
    child.once('error', () => resolve('not-started'))
    // L3 at once: the lock names the worker from now on, so that if this process is killed before
    // the worker adopts it, nobody takes it for stale (its pid is alive) and refreshes beside it.
    if (child.pid !== undefined) void lock.handOver(child.pid).catch(() => undefined)
    child.once('exit', () => void afterExit(lock).then(resolve))
    // Not unref'd: this process waits for the worker. If this process dies, the worker (its own
    // process group, detached) carries on and finishes the refresh.
  })
}

/**
 * A worker that ends normally has released the lock. If it still carries our nonce, the worker
 * died without finishing: take the lock back and refresh here (the record is re-read first, so a
 * refresh it did persist is not repeated).
 */
async function afterExit(lock: LockHandle): Promise<'done' | 'not-started'> {
  let info
  try {
    info = await readLock(lock.path)
  } catch {
    return 'done'
  }
  if (info?.nonce !== lock.nonce) return 'done'
  await lock.handOver(process.pid).catch(() => undefined)
  return 'not-started'
}

/** The keys a parent hands over; undefined when it died before writing them (the worker then looks for them itself). */
async function readKeysFromStdin(): Promise<Map<string, Buffer> | undefined> {
  const chunks: Buffer[] = []
  try {
    for await (const c of process.stdin) {
      chunks.push(c as Buffer)
      if (chunks.reduce((n, b) => n + b.length, 0) > 64 * 1024) break
    }
    return decodeKeyMap(Buffer.concat(chunks).toString('utf8'))
  } catch {
    return undefined
  }
}

/** The worker's entry (refresh-worker.ts): 0 when the refresh is done or not ours, 1 when it failed (recorded). */
export async function runWorker(argv: string[]): Promise<number> {
  const parsed = JSON.parse(argv[0] ?? '{}') as WorkerArgs | SharedWorkerArgs
  if ('kind' in parsed && parsed.kind === 'shared') return await runSharedWorker(parsed)
  const a = parsed as WorkerArgs
  // An encrypted store: the parent's unlocked keys arrive on stdin (never argv or the environment)
  const storeKeys = a.keys ? await readKeysFromStdin() : undefined
  const env = process.env
  const paths = resolvePaths(env)
  const config = new ConfigFile(paths.configFile)
  const store = openStore({
    env,
    paths,
    passphraseCommand: async () => (await config.loadOrNothing())?.store?.passphraseCommand,
    ...(storeKeys ? { keys: storeKeys } : {}),
  })
  const lock = await adoptLock(a.lockPath, a.nonce)
  if (!lock) return 0 // the parent's lock was taken over (it looked stale): not ours to refresh
  try {
    // the parent's snapshot as options: it wins over anything this process would read
    const settings = resolveSettings(a.settings, env, undefined)
    const ctx = { store, settings, now: Date.now, sleep, random: Math.random }
    await refreshUnderLock(ctx, a.id, {
      force: a.force,
      since: a.since,
      minSec: a.minSec,
      ...(a.resource ? { resource: a.resource } : {}),
    })
    return 0
  } catch {
    return 1 // the outcome is in the record
  } finally {
    await lock.release()
  }
}
