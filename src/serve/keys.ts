/**
 * The token service's API keys. A key is `mk_` + 32 random bytes (base64url): shown once at
 * `mailkey serve key add`, stored only as its SHA-256 (a 256-bit random secret needs no slow
 * hash: nobody can guess one, and the hash cannot be turned back), as an item of kind `api-key`
 * named by the key's name (store/items.ts), so every replica knows every key.
 *
 * Each replica keeps the list in memory and reads it again at most every `ttlMs` (and, for a key it
 * does not know, at most every `missMs`): a removed key stops working within `ttlMs` on every
 * replica, and a flood of wrong keys costs the store one read per `missMs`.
 *
 * Owns: making, hashing, naming, checking and listing keys. Must not: log a key or its hash.
 */
import { createHash, randomBytes } from 'node:crypto'
import { UsageError, isStoreUnavailable } from '../errors.js'
import { Secret } from '../core/secret.js'
import { accountId } from '../domain/account.js'
import type { Item, ItemStore } from '../store/items.js'

export interface ApiKey {
  name: string
  /** account ids the key may use, or '*' for all */
  accounts: string[] | '*'
  /** epoch ms */
  createdAt: number
}

export const KEY_PREFIX = 'mk_'
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export function checkKeyName(name: string): string {
  if (!NAME.test(name))
    throw new UsageError(`"${name.slice(0, 80)}" cannot name a key`, {
      hint: 'Use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit.',
    })
  return name
}

export function newKey(): Secret {
  return new Secret(KEY_PREFIX + randomBytes(32).toString('base64url'))
}

export const hashKey = (key: string): string => createHash('sha256').update(key, 'utf8').digest('hex')

/** Does `key` let its holder use `account`? */
export function allows(key: ApiKey, account: string): boolean {
  return key.accounts === '*' || key.accounts.includes(accountId(account))
}

function keyOf(it: Item): { hash: string; key: ApiKey } | undefined {
  const v = it.value
  const accounts = v.accounts === '*' ? '*' : Array.isArray(v.accounts) ? v.accounts.map(String) : undefined
  if (typeof v.hash !== 'string' || accounts === undefined) return undefined
  return { hash: v.hash, key: { name: it.name, accounts, createdAt: Number(v.createdAt) || it.updatedAt } }
}

/** Add a key; returns the key itself (to show once). Refuses a name already taken. */
export async function addKey(items: ItemStore, name: string, accounts: string[] | '*'): Promise<Secret> {
  checkKeyName(name)
  const key = newKey()
  const value = {
    hash: hashKey(key.reveal()),
    accounts: accounts === '*' ? '*' : [...new Set(accounts.map(accountId))].sort(),
    createdAt: Date.now(),
  }
  if (!(await items.put('api-key', name, value, 'create')))
    throw new UsageError(`there is already a key named "${name}" in ${items.where}`, {
      hint: `Pick another name, or run "mailkey serve key remove ${name}" first.`,
    })
  return key
}

export async function listKeys(items: ItemStore): Promise<ApiKey[]> {
  return (await items.list('api-key')).flatMap((it) => keyOf(it)?.key ?? [])
}

export interface KeyRingOptions {
  /** how long the list is trusted (default 1 s) */
  ttlMs?: number
  /** how often an unknown key may cause a read (default 200 ms) */
  missMs?: number
  now?: () => number
}

/** The keys a replica accepts, from the store, cached briefly. */
export class KeyRing {
  readonly #items: () => Promise<ItemStore>
  readonly #ttlMs: number
  readonly #missMs: number
  readonly #now: () => number
  #byHash = new Map<string, ApiKey>()
  #readAt = -Infinity
  #reading: Promise<void> | undefined

  constructor(items: () => Promise<ItemStore>, o: KeyRingOptions = {}) {
    this.#items = items
    this.#ttlMs = o.ttlMs ?? 1000
    this.#missMs = o.missMs ?? 200
    this.#now = o.now ?? Date.now
  }

  /** Read the keys now (also the readiness check: the store answers). */
  async refresh(): Promise<void> {
    this.#reading ??= (async () => {
      try {
        const all = await (await this.#items()).list('api-key')
        const next = new Map<string, ApiKey>()
        for (const it of all) {
          const k = keyOf(it)
          if (k) next.set(k.hash, k.key)
        }
        this.#byHash = next
        this.#readAt = this.#now()
      } finally {
        this.#reading = undefined
      }
    })()
    await this.#reading
  }

  /** The key a bearer value is, or undefined. Throws only when the store cannot be read. */
  async check(bearer: string): Promise<ApiKey | undefined> {
    if (!bearer.startsWith(KEY_PREFIX) || bearer.length > 200) return undefined
    const h = hashKey(bearer)
    if (this.#now() - this.#readAt >= this.#ttlMs) await this.#refreshOrKeep()
    let k = this.#byHash.get(h)
    if (!k && this.#now() - this.#readAt >= this.#missMs) {
      await this.#refreshOrKeep()
      k = this.#byHash.get(h)
    }
    return k
  }

  /**
   * Read the list again; when the store cannot be reached, keep the last list read (the replica
   * serves tokens from its host cache meanwhile, docs/adr/0012), or throw if there never was one.
   * Any other failure (a corrupt store) is the answer.
   */
  async #refreshOrKeep(): Promise<void> {
    try {
      await this.refresh()
    } catch (e) {
      if (this.#readAt === -Infinity || !isStoreUnavailable(e)) throw e
    }
  }
}
