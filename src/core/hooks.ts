/**
 * User hooks (config.toml [hooks]): a shell command run when something needs the user — a grant
 * that needs a new sign-in (`reauth`), a device code waiting to be entered (`device_code`, e.g. to
 * push it to a phone), a failed refresh (`refresh_error`). What happened travels in MAILKEY_*
 * environment variables, never on the command line and never a token.
 *
 * A hook never blocks or fails its caller: it runs detached, with no stdin/stdout/stderr, and a
 * POSIX sh wrapper kills it after `timeout_sec` even when the caller has long exited.
 *
 * Owns: starting hooks. Must not: wait for them, or pass any secret to them.
 */
import { spawn } from 'node:child_process'

export type HookEvent = 'reauth' | 'device_code' | 'refresh_error'

export interface HooksConfig {
  reauth?: string
  device_code?: string
  refresh_error?: string
  /** seconds before a hook is killed (default 10) */
  timeoutSec?: number
}

export const DEFAULT_HOOK_TIMEOUT_SEC = 10

// $0: sh, $1: the hook's command line, $2: seconds. The wrapper leads its own process group
// (spawned detached). The hook runs in the background; when time is up a watchdog sends TERM to
// the whole group (`kill 0`: the hook, whatever it started, the wrapper); if the hook ends first,
// the watchdog is stopped.
const WRAPPER =
  '"$0" -c "$1" & p=$!; (sleep "$2"; kill -TERM 0) & w=$!; wait "$p"; r=$?; kill "$w" 2>/dev/null; exit $r'

/**
 * Start the hook for `event` if there is one. `vars` become MAILKEY_<NAME> variables (names upper-
 * cased); MAILKEY_EVENT is set. Returns whether a hook was started.
 */
export function runHook(
  hooks: HooksConfig | undefined,
  event: HookEvent,
  vars: Record<string, string | number | undefined>,
  baseEnv: Record<string, string | undefined>,
): boolean {
  const command = hooks?.[event]
  if (!command) return false
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(baseEnv)) {
    // the hook gets the caller's environment minus mailkey's own secrets (an env-defined account's refresh token)
    if (v !== undefined && !/^MAILKEY_(REFRESH_TOKEN|CLIENT_SECRET)/.test(k)) env[k] = v
  }
  env.MAILKEY_EVENT = event
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) env[`MAILKEY_${k.toUpperCase()}`] = String(v)
  try {
    const child = spawn(
      '/bin/sh',
      ['-c', WRAPPER, '/bin/sh', command, String(hooks?.timeoutSec ?? DEFAULT_HOOK_TIMEOUT_SEC)],
      {
        detached: true,
        stdio: 'ignore',
        env,
      },
    )
    child.on('error', () => {})
    child.unref()
    return true
  } catch {
    return false
  }
}
