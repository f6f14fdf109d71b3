/**
 * Small named things kept beside the accounts, for the services: the token service's API keys
 * (`api-key`, stored as hashes) and the proxy's local passwords (`proxy-password`, scrypt
 * hashes). Never a secret in the clear: what is stored here is safe to read for whoever can read
 * the store. On a shared store they live in the engine (store/shared/items.ts), so every replica
 * sees the same keys and passwords; on the file store in one 0600 file of the state directory.
 *
 * Owns: the ItemStore port and the file implementation. Must not: hash, or know what a value means.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { ERR, StoreError } from '../errors.js'
import type { Paths } from '../config/paths.js'
import { DIR_MODE, checkPrivate, readStateFile, storeIoError, writeFileAtomic } from './atomic-file.js'
import { acquire } from './lock.js'

export type ItemKind = 'api-key' | 'proxy-password'

export interface Item {
  name: string
  value: Record<string, unknown>
  /** epoch ms of the last write */
  updatedAt: number
}

export interface ItemStore {
  /** where they are, for messages: a store label or a file path */
  readonly where: string
  /** kept in a shared store (every host of it sees them), not in this host's state directory */
  readonly shared: boolean
  get(kind: ItemKind, name: string): Promise<Item | undefined>
  list(kind: ItemKind): Promise<Item[]>
  /** `create`: only when no item of that name exists (false: one does); `replace`: always */
  put(kind: ItemKind, name: string, value: Record<string, unknown>, mode: 'create' | 'replace'): Promise<boolean>
  /** false: there was none */
  remove(kind: ItemKind, name: string): Promise<boolean>
}

interface ItemsFile {
  v: 1
  items: Partial<Record<ItemKind, Record<string, Item>>>
}

/** The file store's items: `<state>/items.json`, 0600, changed under a lock file. */
export class FileItems implements ItemStore {
  readonly where: string
  readonly shared = false
  readonly #dir: string

  constructor(paths: Paths) {
    this.#dir = paths.stateDir
    this.where = join(paths.stateDir, 'items.json')
  }

  async #read(): Promise<ItemsFile> {
    let got: ReturnType<typeof readStateFile>
    try {
      got = readStateFile(this.where)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ELOOP') await checkPrivate(this.where, 'file')
      throw storeIoError(`cannot read "${this.where}"`, e)
    }
    if (!got) return { v: 1, items: {} }
    if (got.needsModeCheck) await checkPrivate(this.where, 'file')
    try {
      const f = JSON.parse(got.text) as ItemsFile
      if (f.v !== 1 || typeof f.items !== 'object' || f.items === null) throw new Error('shape')
      return f
    } catch {
      throw new StoreError(ERR.STORE_CORRUPT, `"${this.where}" cannot be used`, {
        hint: 'Move it aside; then add the API keys again with "mailkey serve key add NAME".',
      })
    }
  }

  async #change(fn: (f: ItemsFile) => boolean): Promise<boolean> {
    try {
      await mkdir(this.#dir, { recursive: true, mode: DIR_MODE })
    } catch (e) {
      throw storeIoError(`cannot create the state directory "${this.#dir}"`, e)
    }
    await checkPrivate(this.#dir, 'dir')
    const lock = await acquire(`${this.where}.lock`)
    try {
      const f = await this.#read()
      const changed = fn(f)
      if (changed) await writeFileAtomic(this.where, JSON.stringify(f, null, 2) + '\n')
      return changed
    } finally {
      await lock.release()
    }
  }

  async get(kind: ItemKind, name: string): Promise<Item | undefined> {
    return (await this.#read()).items[kind]?.[name]
  }

  async list(kind: ItemKind): Promise<Item[]> {
    const all = (await this.#read()).items[kind] ?? {}
    return Object.values(all).sort((a, b) => a.name.localeCompare(b.name))
  }

  async put(
    kind: ItemKind,
    name: string,
    value: Record<string, unknown>,
    mode: 'create' | 'replace',
  ): Promise<boolean> {
    return await this.#change((f) => {
      const of = (f.items[kind] ??= {})
      if (mode === 'create' && of[name]) return false
      of[name] = { name, value, updatedAt: Date.now() }
      return true
    })
  }

  async remove(kind: ItemKind, name: string): Promise<boolean> {
    return await this.#change((f) => {
      const of = f.items[kind]
      if (!of?.[name]) return false
      delete of[name]
      return true
    })
  }
}
