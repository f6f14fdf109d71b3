// A throw-away HOME with its own XDG directories, and a clean environment for child processes.
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TmpHome {
  /** Root of the temporary tree (HOME and the XDG directories are inside it). */
  dir: string
  /** A copy of process.env pointing HOME/XDG_* inside `dir`, without variables that leak the real desktop. */
  env: Record<string, string>
  cleanup(): Promise<void>
}

/** Removed from the copied environment (MAILKEY_* variables are removed too). */
export const STRIPPED_ENV = [
  'NODE_EXTRA_CA_CERTS',
  'BROWSER',
  'DISPLAY',
  'WAYLAND_DISPLAY',
  'SSH_CONNECTION',
  'SSH_CLIENT',
  'SSH_TTY',
]

export async function makeTmpHome(): Promise<TmpHome> {
  const dir = await mkdtemp(join(tmpdir(), 'mailkey-home-'))
  const dirs = {
    HOME: join(dir, 'home'),
    XDG_CONFIG_HOME: join(dir, 'config'),
    XDG_STATE_HOME: join(dir, 'state'),
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_CACHE_HOME: join(dir, 'cache'),
    XDG_RUNTIME_DIR: join(dir, 'runtime'),
  }
  for (const path of Object.values(dirs)) await mkdir(path, { recursive: true, mode: 0o700 })

  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || STRIPPED_ENV.includes(name) || name.startsWith('MAILKEY_')) continue
    env[name] = value
  }
  Object.assign(env, dirs)

  let removed: Promise<void> | undefined
  return {
    dir,
    env,
    cleanup() {
      removed ??= rm(dir, { recursive: true, force: true, maxRetries: 3 })
      return removed
    },
  }
}

/** An account's record file in such a home (a plain store: state/mailkey/accounts/<email>.json). */
export function recordFile(env: Record<string, string>, email: string): string {
  return join(env.XDG_STATE_HOME as string, 'mailkey', 'accounts', `${email}.json`)
}
