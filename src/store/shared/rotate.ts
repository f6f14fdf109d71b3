/**
 * `mailkey store rotate-key`: a new store key, in three steps, so that no host is ever handed a
 * record it cannot open (every host reads the key file it has; new files reach hosts one by one):
 *
 * 1. prepare: a new key is appended to the key file: it opens records but seals none yet. The file
 *    goes to every host.
 * 2. rotate: the newest key moves to the front (it seals from now on) and every record is sealed
 *    again with it, each under its lease (read and written by the lease holder, so a refresh on
 *    another host meanwhile is never overwritten). Hosts that still have the step-1 file keep
 *    sealing with the old key, which every host can still open.
 * 3. finish: records still sealed with an older key (written by hosts with the old file) are sealed
 *    again, then the older keys leave the file.
 *
 * Owns: key file rotation and re-sealing. Must not: refresh.
 */
import { readFile } from 'node:fs/promises'
import { ConfigError, ERR } from '../../errors.js'
import { writeFileAtomic } from '../atomic-file.js'
import type { SharedStore } from './shared-store.js'
import { keyFileText, loadKeyRing, newKeyLine, parseKeyFile, type StoreKey } from './store-key.js'

const RESEAL_WAIT_MS = 30_000

async function keysIn(path: string, label: string): Promise<StoreKey[]> {
  await loadKeyRing(path, label) // the same checks as every host makes (mode 0600, format)
  return parseKeyFile(await readFile(path, 'utf8'), path)
}

/** Step 1: a new key at the end of the file; its id. */
export async function prepareKey(path: string, label: string): Promise<string> {
  const keys = await keysIn(path, label)
  const [added] = parseKeyFile(newKeyLine(), path)
  await writeFileAtomic(path, keyFileText([...keys, added as StoreKey]))
  return (added as StoreKey).kid
}

/** Step 2a: the newest key to the front; its id. */
export async function promoteNewest(path: string, label: string): Promise<string> {
  const keys = await keysIn(path, label)
  if (keys.length < 2) {
    throw new ConfigError(
      ERR.STORE_KEY_UNAVAILABLE,
      `the key file "${path}" holds one key: there is nothing to rotate to`,
      {
        hint: 'Run "mailkey store rotate-key --prepare" first and copy the key file to every host.',
      },
    )
  }
  const newest = keys.at(-1) as StoreKey
  await writeFileAtomic(path, keyFileText([newest, ...keys.slice(0, -1)]))
  return newest.kid
}

/**
 * Step 2b and 3a: every record not sealed with `kid` sealed again with the store's current key
 * (the store must have been opened after the key file changed). Returns the accounts done.
 */
export async function resealAll(store: SharedStore, kid: string): Promise<string[]> {
  const done: string[] = []
  for (const row of await store.backend.list()) {
    if (!row.box || row.version === 0 || row.box.kid === kid) continue
    const lease = await store.claimWaiting(row.id, 'rekey', RESEAL_WAIT_MS)
    try {
      await store.runHolding(lease, async () => {
        const rec = await store.recordOf(lease.row)
        if (rec && lease.row.box?.kid !== kid) await store.write(rec)
      })
      done.push(row.id)
    } finally {
      await store.release(lease).catch(() => undefined)
    }
  }
  return done
}

/** Step 3b: only the first key stays in the file; the ids dropped. */
export async function dropOlderKeys(path: string, label: string): Promise<string[]> {
  const keys = await keysIn(path, label)
  await writeFileAtomic(path, keyFileText(keys.slice(0, 1)))
  return keys.slice(1).map((k) => k.kid)
}
