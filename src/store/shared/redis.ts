/**
 * The shared store on Redis: not built yet (issue 13 builds PostgreSQL first). Until then a
 * redis:// URL is refused with a clear error.
 *
 * Owns: the Redis backend. Must not: seal or refresh.
 */
import { ConfigError, ERR } from '../../errors.js'
import type { Env } from '../../config/paths.js'
import type { SharedBackend } from './backend.js'

export class RedisBackend {
  constructor(_url: string, label: string, _env: Env) {
    throw new ConfigError(
      ERR.CONFIG_INVALID,
      `the shared store ${label} is on Redis, which this mailkey cannot use yet`,
      {
        hint: 'Use a postgres:// store URL.',
      },
    )
  }
}

export type { SharedBackend }
