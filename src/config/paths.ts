/**
 * Where mailkey keeps things (XDG Base Directory Specification 0.8):
 * - config (user-edited, no secrets): $XDG_CONFIG_HOME/mailkey/config.toml
 * - state (grants, tokens, locks; 0700 dir, 0600 files): $XDG_STATE_HOME/mailkey/
 *
 * Owns: turning an environment into paths. The environment is a parameter, so library callers
 * and tests can pass their own; only the CLI passes process.env.
 */
import { homedir } from 'node:os'
import { isAbsolute, join } from 'node:path'

export type Env = Readonly<Record<string, string | undefined>>

export interface Paths {
  configDir: string
  configFile: string
  stateDir: string
  accountsDir: string
}

function xdg(env: Env, name: string, fallback: string): string {
  const v = env[name]
  // XDG spec: "If an implementation encounters a relative path in any of these variables it
  // should consider the path invalid and ignore it."
  return v && isAbsolute(v) ? v : join(env.HOME && isAbsolute(env.HOME) ? env.HOME : homedir(), fallback)
}

export function resolvePaths(env: Env): Paths {
  const configDir = join(xdg(env, 'XDG_CONFIG_HOME', '.config'), 'mailkey')
  const stateDir =
    env.MAILKEY_STATE_DIR && isAbsolute(env.MAILKEY_STATE_DIR)
      ? env.MAILKEY_STATE_DIR
      : join(xdg(env, 'XDG_STATE_HOME', join('.local', 'state')), 'mailkey')
  return {
    configDir,
    configFile:
      env.MAILKEY_CONFIG && isAbsolute(env.MAILKEY_CONFIG) ? env.MAILKEY_CONFIG : join(configDir, 'config.toml'),
    stateDir,
    accountsDir: join(stateDir, 'accounts'),
  }
}
