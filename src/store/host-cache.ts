/**
 * A host's own copy of the access tokens it got from a shared store, so that while the store is
 * down the host keeps handing out a token it already holds, as long as it is valid (short-lived
 * processes such as `mailkey token` too, not only a long-running proxy). Access tokens only, never
 * a refresh token: nothing here can refresh, so nothing here can race the fleet.
 *
 * The account's settings ride along (servers, SASL; never its client secret), so a proxy can still
 * reach the mail server for a client. One 0600 file per account in `<state dir>/tokens/` (0700), written atomically (I1) and refused
 * when others can read it (I2), like the file store's records.
 *
 * Owns: the cache files. Must not: decide when a cached token may be used (broker/host-tokens.ts).
 */
import { mkdir, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { Paths } from '../config/paths.js'
import type { SaslMechanism } from '../providers/types.js'
import type { AccountSettings } from '../domain/account.js'
import { DIR_MODE, checkPrivate, readStateFile, writeFileAtomic } from './atomic-file.js'
import { fileNameFor } from './file-store.js'

export interface CachedToken {
  account: string
  /** the account's settings without its client secret: a proxy needs the servers while the store is down */
  settings?: AccountSettings
  token: string
  /** epoch ms */
  expiresAt: number
  scope?: string
  sasl: SaslMechanism
  user: string
}

export class HostCache {
  readonly dir: string
  readonly #paths: Paths
  #ready = false

  constructor(paths: Paths) {
    this.#paths = paths
    this.dir = join(paths.stateDir, 'tokens')
  }

  #path(id: string): string {
    return join(this.dir, fileNameFor(id) + '.json')
  }

  /** The cached token of `id`, or undefined (none, unreadable, or not private: then it is not used). */
  async get(id: string): Promise<CachedToken | undefined> {
    try {
      const got = readStateFile(this.#path(id))
      if (!got) return undefined
      if (got.needsModeCheck) await checkPrivate(this.#path(id), 'file')
      const t = JSON.parse(got.text) as Partial<CachedToken>
      if (typeof t.token !== 'string' || typeof t.expiresAt !== 'number' || typeof t.account !== 'string')
        return undefined
      return t as CachedToken
    } catch {
      return undefined
    }
  }

  /** Forget `id` (removed, or its grant is dead): a dead grant's token is never handed out from here. */
  async remove(id: string): Promise<void> {
    await unlink(this.#path(id)).catch(() => undefined)
  }

  async put(id: string, t: CachedToken): Promise<void> {
    if (!this.#ready) {
      for (const d of [this.#paths.stateDir, this.dir]) {
        await mkdir(d, { recursive: true, mode: DIR_MODE })
        await checkPrivate(d, 'dir')
      }
      this.#ready = true
    }
    await writeFileAtomic(this.#path(id), JSON.stringify(t) + '\n')
  }
}
