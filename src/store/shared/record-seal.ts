/**
 * A whole account record sealed for a shared store: settings (with any client secret) and grant,
 * as JSON, under AES-256-GCM with the store key (store/seal.ts sealBytes: fresh 96-bit IV each
 * time). The additional data binds the account id, the record's version and the key id, so a
 * sealed blob copied to another account's row, or an older blob put back under a newer version,
 * fails to open instead of decrypting.
 *
 * Owns: the shared record's sealed format. Must not: do I/O.
 */
import type { AccountRecord, AccountSettings, GrantRecord, SealedBox } from '../../domain/account.js'
import { SealError, openBytes, sealBytes } from '../seal.js'
import type { StoreKey } from './store-key.js'

const KIND = 'shared-record'

interface Sealed {
  settings: AccountSettings
  grant?: GrantRecord
}

const bound = (id: string, version: number): string => `${id}\0v${version}`

export function sealShared(rec: AccountRecord, id: string, version: number, key: StoreKey): SealedBox {
  const body: Sealed = { settings: rec.settings, ...(rec.grant ? { grant: rec.grant } : {}) }
  return sealBytes(key.key, key.kid, KIND, bound(id, version), Buffer.from(JSON.stringify(body), 'utf8'))
}

/** The settings and grant of a sealed row; SealError when they do not open with `key`. */
export function openShared(box: SealedBox, id: string, version: number, key: Buffer): Sealed {
  const plain = openBytes(key, KIND, bound(id, version), box)
  let body: unknown
  try {
    body = JSON.parse(plain.toString('utf8'))
  } catch {
    throw new SealError('the sealed record is not valid JSON')
  }
  const b = body as Partial<Sealed> | null
  if (typeof b !== 'object' || b === null || typeof b.settings !== 'object' || b.settings === null)
    throw new SealError('the sealed record has no settings')
  return b as Sealed
}
