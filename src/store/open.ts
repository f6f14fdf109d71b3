/**
 * Opens the file store the way every entry point needs it: the account files under the state
 * directory, and an encrypted store's keys (store.json) unlocked on demand from the agent, the OS
 * keyring, passphrase_command or a terminal prompt.
 *
 * Owns: wiring FileStore to StoreKeys. Must not: read tokens or refresh.
 */
import type { Env, Paths } from '../config/paths.js'
import { FileStore } from './file-store.js'
import { StoreKeys } from './protection.js'

export interface OpenStoreOptions {
  env: Env
  paths: Paths
  /** [store] passphrase_command of config.toml, read when a key is first needed */
  passphraseCommand?: () => Promise<string | undefined>
  /** an encrypted store: ask for its passphrase on a terminal (the CLI passes this) */
  askPassphrase?: (prompt: string) => Promise<string | undefined>
  /** an encrypted store: data keys already unlocked (handed to the refresh worker) */
  keys?: ReadonlyMap<string, Buffer>
}

export function openStore(o: OpenStoreOptions): FileStore {
  return new FileStore(
    o.paths,
    new StoreKeys(o.paths, {
      env: o.env,
      ...(o.passphraseCommand ? { passphraseCommand: o.passphraseCommand } : {}),
      ...(o.askPassphrase ? { askPassphrase: o.askPassphrase } : {}),
      ...(o.keys ? { keys: o.keys } : {}),
    }),
  )
}
