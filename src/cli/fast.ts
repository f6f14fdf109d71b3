/**
 * The `mailkey token <email>` fast path. Mail clients run the credential command once per
 * connection, so printing a cached token should cost little more than starting Node.
 *
 * It handles exactly one case: a plain `token` call whose stored token is fresh. Everything else
 * (flags, refresh needed, env-defined accounts, a config file, any error) returns undefined and
 * the full CLI takes over, which decides and reports the same way: the freshness rule is shared
 * with the broker (broker/freshness.ts) and the record is read by the same FileStore.
 *
 * An encrypted store takes the shortcut only with a running agent (`mailkey unlock`): one more
 * local round trip to fetch the key.
 *
 * Owns: the shortcut. Must not: write anything, print errors, or load OAuth code.
 */
import { existsSync, readFileSync } from 'node:fs'
import type { Env } from '../config/paths.js'
import { resolvePaths } from '../config/paths.js'
import { FileStore } from '../store/file-store.js'
import { accountId } from '../domain/account.js'
import { DEFAULT_REFRESH_MARGIN_SEC, isFresh, marginFromEnv } from '../broker/freshness.js'

export async function fastToken(argv: readonly string[], env: Env, now = Date.now()): Promise<string | undefined> {
  if (argv[0] !== 'token' || argv.length > 2) return undefined
  const email = argv[1] ?? env.MAILKEY_EMAIL
  if (!email || email.startsWith('-')) return undefined
  const id = accountId(email)
  if (env.MAILKEY_EMAIL && accountId(env.MAILKEY_EMAIL) === id) return undefined // may need seeding
  const paths = resolvePaths(env)
  let margin = marginFromEnv(env.MAILKEY_REFRESH_MARGIN_SEC)
  if (margin === undefined) {
    // a config.toml (the proxy's listeners, hooks, [store]) keeps the fast path unless it sets the
    // margin or defines providers (their grant horizons can make `token` warn): then the full CLI
    // parses it (no TOML parser here)
    if (existsSync(paths.configFile)) {
      let text: string
      try {
        text = readFileSync(paths.configFile, 'utf8')
      } catch {
        return undefined
      }
      if (/^\s*refresh_margin_sec\s*=|^\s*\[\s*providers\b/m.test(text)) return undefined
    }
    margin = DEFAULT_REFRESH_MARGIN_SEC
  }
  try {
    let rec = await new FileStore(paths).read(id, { secrets: false })
    if (rec?.sealed) {
      // An encrypted store: only a running agent's key, verified (store/agent.ts A1); anything
      // else (the OS keyring: +28 ms to load; a passphrase) is the full CLI's job.
      // loaded only here: a plain store's fast path must not pay for sockets and ciphers
      const [{ agentSocketPath, keyOpensCheck, readMeta }, { requestKey }, { openRecord }] = await Promise.all([
        import('../store/protection.js'),
        import('../store/agent.js'),
        import('../store/seal.js'),
      ])
      const info = readMeta(paths)?.keys.find((k) => k.kid === rec?.sealed?.kid)
      if (!info) return undefined
      const key = await requestKey(agentSocketPath(paths, env), info.kid).catch(() => undefined)
      if (!key || !keyOpensCheck(key, info)) return undefined
      rec = openRecord(rec, id, key)
    }
    if (rec?.state !== 'active' || !isFresh(rec.grant, now, margin)) return undefined
    return rec.grant?.accessToken
  } catch {
    return undefined // the full CLI reports it
  }
}
