/**
 * The `mailkey token <email>` fast path. Mail clients run the credential command once per
 * connection, so printing a cached token should cost little more than starting Node.
 *
 * It handles exactly one case: a plain `token` call whose stored token is fresh (or, on a host that
 * uses a token service, the service's answer: fast-service.ts). Everything else
 * (flags, refresh needed, env-defined accounts, a config.toml that the settings snapshot says
 * needs the full CLI, a broken one, any error) returns undefined and the full CLI takes over, which
 * decides and reports the same way: the settings come from the same snapshot (config/settings.ts),
 * the freshness rule is shared with the broker (broker/freshness.ts) and the record is read by the
 * same FileStore.
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
import { isFresh } from '../broker/freshness.js'
import { fastPathAllowed, resolveSettings } from '../config/settings.js'
import { isServiceUrl } from '../remote/service-url.js'
import type { Config } from '../config/config.js'

/**
 * config.toml parsed by the same parser as the full CLI's (config/config.ts, smol-toml: bundled,
 * evaluated only when the file exists), so the fast path and the broker read the same settings.
 */
async function readConfig(file: string): Promise<Config | 'broken' | undefined> {
  if (!existsSync(file)) return undefined
  try {
    const { parseConfig } = await import('../config/config.js')
    return parseConfig(readFileSync(file, 'utf8'), file)
  } catch {
    return 'broken'
  }
}

export async function fastToken(argv: readonly string[], env: Env, now = Date.now()): Promise<string | undefined> {
  if (argv[0] !== 'token' || argv.length > 2) return undefined
  const email = argv[1] ?? env.MAILKEY_EMAIL
  if (!email || email.startsWith('-')) return undefined
  const id = accountId(email)
  if (env.MAILKEY_EMAIL && accountId(env.MAILKEY_EMAIL) === id) return undefined // may need seeding
  if (isServiceUrl(env.MAILKEY_STORE_URL)) {
    const { fastServiceToken } = await import('./fast-service.js')
    return await fastServiceToken(email, env)
  }
  if (env.MAILKEY_STORE_URL) return undefined // a shared store: the full CLI
  const paths = resolvePaths(env)
  // read even when the environment sets the margin: providers defined there decide too (fastPathAllowed)
  const file = await readConfig(paths.configFile)
  // the file is there but broken: the full CLI reports it
  if (file === 'broken' || !fastPathAllowed(file) || file?.store?.url) return undefined
  const margin = resolveSettings({}, env, file).refreshMarginSec
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
