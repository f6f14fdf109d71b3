/**
 * What the proxy needs from the rest of mailkey: the account's record and access token for the
 * upstream sign-in, the state directory for the local password file (or, on a shared store, the
 * store's items, where every replica finds the same passwords), and a keep-alive pass to
 * schedule. `Mailkey` (mailkey.ts) satisfies it as it is; tests hand the proxy a fake.
 *
 * Owns: that contract only. Must not: import the broker, the store or the facade (types below
 * the proxy's layer only: the items port is one).
 */
import type { Paths } from '../config/paths.js'
import type { Secret } from '../core/secret.js'
import type { AccountRecord, ResourceName, SendMode } from '../domain/account.js'
import type { KeepAliveNote, PassOptions } from '../broker/keep-alive.js'
import type { ItemStore } from '../store/items.js'

export interface TokenSource {
  /** the account's stored record without its secrets (undefined: no such account) */
  record(account: string): Promise<AccountRecord | undefined>
  /** a usable access token; `forceRefresh` after the server refused the last one */
  getAccessToken(
    account: string,
    options: { forceRefresh?: boolean; signal?: AbortSignal; resource?: ResourceName },
  ): Promise<{ token: Secret }>
  /** where the state directory is (the local password file lives there) */
  readonly paths: Paths
  /** create the state directories (0700) when missing */
  ensureStateDir(): Promise<void>
  /** one keep-alive pass over idle-limited grants (broker/keep-alive.ts); the proxy only schedules it */
  keepAlive(o?: PassOptions): Promise<KeepAliveNote[]>
  /** the store's items (proxy passwords live there on a shared store); absent: the local file */
  items?(): Promise<ItemStore>
  /** how the account submits mail (its own setting, else its provider's; absent: SMTP) */
  sendMode?(account: string): Promise<SendMode>
  /** remember how the account submits mail (an `auto` account that met 5.7.139 switches to Graph once) */
  rememberSendMode?(account: string, mode: SendMode): Promise<void>
}
