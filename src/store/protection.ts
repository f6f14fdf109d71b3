/**
 * How the store is protected at rest, and where its data key comes from.
 *
 * `store.json` in the state directory says it (no file: plain 0600 files, as before):
 *   { v: 1, protection: 'keyring' | 'passphrase' | 'file', current: kid, keys: [...] }
 * Each key entry names one data key: in the OS keyring (service "mailkey", entry
 * "store-key-<kid>"), or wrapped under a passphrase (scrypt parameters + the wrapped key). Every
 * entry carries a check value sealed with its key, so a key from the keyring or the agent is
 * verified before it is used to write (P2). During `mailkey store migrate` two keys are listed;
 * records name the key they were sealed with, so a half-done migration still reads everything.
 *
 * A key is looked for, in order: this process's cache, the agent (store/agent.ts, a user-only
 * socket), the OS keyring, a passphrase (passphrase_command, then the terminal).
 *
 * Invariants:
 * - P1 a key is never written to disk unwrapped, never logged, never put in argv or environment.
 * - P2 a key that does not open its check value is refused (wrong passphrase, a rogue agent).
 *
 * Owns: store.json and the key sources. Must not: read or write account records.
 */
import { isAbsolute, join } from 'node:path'
import { ERR, StoreError, StoreLockedError } from '../errors.js'
import type { Env, Paths } from '../config/paths.js'
import { readStateFile, writeFileAtomic } from './atomic-file.js'
import { KEY_BYTES, SealError, deriveKey, openBytes, sealBytes, unwrapKey, type ScryptParams } from './seal.js'
import type { SealedBox } from '../domain/account.js'

export type Protection = 'file' | 'keyring' | 'passphrase'

export interface KeyringKeyInfo {
  kid: string
  kind: 'keyring'
  service: string
  entry: string
  check: SealedBox
}

export interface PassphraseKeyInfo {
  kid: string
  kind: 'passphrase'
  kdf: ScryptParams
  wrapped: SealedBox
  check: SealedBox
}

export type KeyInfo = KeyringKeyInfo | PassphraseKeyInfo

export interface StoreMeta {
  v: 1
  protection: Protection
  /** the key new writes are sealed with (absent: plain files) */
  current?: string
  keys: KeyInfo[]
}

export const KEYRING_SERVICE = 'mailkey'

export function metaPath(paths: Paths): string {
  return join(paths.stateDir, 'store.json')
}

/** Where the agent listens: $XDG_RUNTIME_DIR/mailkey/agent.sock, else in the state directory. */
export function agentSocketPath(paths: Paths, env: Env): string {
  const rt = env.XDG_RUNTIME_DIR
  return rt && isAbsolute(rt) ? join(rt, 'mailkey', 'agent.sock') : join(paths.stateDir, 'agent.sock')
}

function corruptMeta(path: string, why: string): StoreError {
  return new StoreError(ERR.STORE_CORRUPT, `the store description "${path}" cannot be used: ${why}`, {
    hint: 'mailkey left it untouched. Restore it from a backup: without it the encrypted tokens cannot be opened, and "mailkey add" signs in again.',
  })
}

const isBox = (b: unknown): b is SealedBox =>
  typeof b === 'object' &&
  b !== null &&
  ['kid', 'iv', 'ct', 'tag'].every((k) => typeof (b as Record<string, unknown>)[k] === 'string')

/** store.json, or undefined when there is none (plain files). Synchronous: on the fast path. */
export function readMeta(paths: Paths): StoreMeta | undefined {
  const path = metaPath(paths)
  let got
  try {
    got = readStateFile(path)
  } catch (e) {
    if (e instanceof StoreError) throw e
    throw new StoreError(ERR.STORE_IO, `cannot read "${path}"`, { cause: e })
  }
  if (!got) return undefined
  if (got.needsModeCheck) {
    throw new StoreError(ERR.STORE_PERMISSIONS, `"${path}" is readable by other users or not yours`, {
      hint: `Run "chmod 600 '${path}'" (and check its owner).`,
    })
  }
  let m: Partial<StoreMeta>
  try {
    m = JSON.parse(got.text) as Partial<StoreMeta>
  } catch {
    throw corruptMeta(path, 'it is not valid JSON')
  }
  if (typeof m !== 'object' || m === null || m.v !== 1)
    throw corruptMeta(
      path,
      `its format version is ${JSON.stringify((m as { v?: unknown } | null)?.v)}, this mailkey reads 1`,
    )
  if (m.protection !== 'file' && m.protection !== 'keyring' && m.protection !== 'passphrase')
    throw corruptMeta(path, 'its protection is unknown')
  if (!Array.isArray(m.keys)) throw corruptMeta(path, 'it lists no keys')
  for (const k of m.keys as unknown[]) {
    const e = k as Record<string, unknown>
    const ok =
      typeof e === 'object' &&
      e !== null &&
      typeof e.kid === 'string' &&
      isBox(e.check) &&
      ((e.kind === 'keyring' && typeof e.service === 'string' && typeof e.entry === 'string') ||
        (e.kind === 'passphrase' && isBox(e.wrapped) && typeof e.kdf === 'object' && e.kdf !== null))
    if (!ok) throw corruptMeta(path, 'a key entry is malformed')
  }
  if (m.current !== undefined && !m.keys.some((k) => k.kid === m.current))
    throw corruptMeta(path, 'its current key is not listed')
  if (m.protection !== 'file' && m.current === undefined) throw corruptMeta(path, 'it names no current key')
  return m as StoreMeta
}

export async function writeMeta(paths: Paths, meta: StoreMeta): Promise<void> {
  await writeFileAtomic(metaPath(paths), JSON.stringify(meta, null, 2) + '\n')
}

/** The check value of a key entry: sealed with the key itself (P2). */
export function checkValue(key: Buffer, kid: string): SealedBox {
  return sealBytes(key, kid, 'key-check', 'store', Buffer.from('mailkey store key', 'utf8'))
}

export function keyOpensCheck(key: Buffer, info: KeyInfo): boolean {
  try {
    return openBytes(key, 'key-check', 'store', info.check).toString('utf8') === 'mailkey store key'
  } catch {
    return false
  }
}

export interface StoreKeysOptions {
  env: Env
  /** a sh command that prints the passphrase ([store] passphrase_command), or how to find it */
  passphraseCommand?: string | (() => Promise<string | undefined>)
  /** ask on a terminal; undefined when there is none */
  askPassphrase?: (prompt: string) => Promise<string | undefined>
  /** keys handed over by a parent (the refresh worker) or unlocked by the agent */
  keys?: ReadonlyMap<string, Buffer>
  /** false: do not ask the agent (the agent itself) */
  useAgent?: boolean
}

/**
 * Unlocked data keys handed to a process mailkey starts itself (the refresh worker, the agent):
 * one JSON line on its stdin, never argv or the environment, which other users can read in /proc.
 */
export function encodeKeyMap(keys: ReadonlyMap<string, Buffer>): string {
  return JSON.stringify(Object.fromEntries([...keys].map(([kid, k]) => [kid, k.toString('base64')]))) + '\n'
}

/** The other end of encodeKeyMap: undefined for anything but a map of key ids to 32-byte keys. */
export function decodeKeyMap(text: string): Map<string, Buffer> | undefined {
  let o: unknown
  try {
    o = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined
  const keys = new Map<string, Buffer>()
  for (const [kid, b64] of Object.entries(o)) {
    if (typeof b64 !== 'string') return undefined
    const k = Buffer.from(b64, 'base64')
    if (k.length !== KEY_BYTES) return undefined
    keys.set(kid, k)
  }
  return keys
}

/** The OS keyring, loaded only when needed (+28 ms for the native addon: off the fast path). */
export async function keyringEntry(
  service: string,
  entry: string,
): Promise<{ get(): string | null; set(v: string): void; remove(): boolean }> {
  let mod: typeof import('@napi-rs/keyring')
  try {
    mod = await import('@napi-rs/keyring')
  } catch (e) {
    throw new StoreLockedError(
      ERR.STORE_KEY_UNAVAILABLE,
      `the OS keyring module cannot be loaded here (${(e as Error).message})`,
      {
        hint: 'Reinstall mailkey for this platform, or protect the store with a passphrase: "mailkey store migrate --to passphrase".',
      },
    )
  }
  // Linux: the Secret Service only. The kernel keyring (the addon's fallback) forgets at reboot,
  // and a key lost there makes every sealed token unreadable.
  let e: InstanceType<typeof mod.Entry>
  try {
    e = new mod.Entry(service, entry, { linux: { store: 'secret-service' } })
  } catch (err) {
    throw keyringRefused(err)
  }
  return {
    get: () => e.getPassword() ?? null,
    set: (v) => e.setPassword(v),
    remove: () => e.deletePassword(),
  }
}

function keyringRefused(e: unknown): StoreLockedError {
  const why = (e as Error).message ?? String(e)
  return new StoreLockedError(ERR.STORE_KEY_UNAVAILABLE, `the OS keyring did not give mailkey its store key (${why})`, {
    cause: e,
    hint: 'Unlock your keyring (log in to the desktop session, or start gnome-keyring-daemon), or run "mailkey unlock".',
  })
}

export class StoreKeys {
  readonly paths: Paths
  readonly #opts: StoreKeysOptions
  readonly #cache = new Map<string, Buffer>()
  #pending = new Map<string, Promise<Buffer>>()

  constructor(paths: Paths, opts: StoreKeysOptions) {
    this.paths = paths
    this.#opts = opts
    for (const [kid, key] of opts.keys ?? []) this.#cache.set(kid, key)
  }

  meta(): StoreMeta | undefined {
    return readMeta(this.paths)
  }

  /** The keys this process holds (handed to the refresh worker, served by the agent). */
  unlocked(): Map<string, Buffer> {
    return new Map(this.#cache)
  }

  /** Every key store.json lists, unlocked now (the agent serves them; the proxy unlocks at start). */
  async unlockAll(meta = this.meta()): Promise<Map<string, Buffer>> {
    for (const k of meta?.keys ?? []) await this.key(k.kid, meta)
    return this.unlocked()
  }

  /** The key writes are sealed with, or undefined when the store keeps plain files. */
  async current(): Promise<{ kid: string; key: Buffer } | undefined> {
    const meta = this.meta()
    if (!meta || meta.protection === 'file' || !meta.current) return undefined
    try {
      return { kid: meta.current, key: await this.key(meta.current, meta) }
    } catch (e) {
      // During a migration a process that started before it may not have the new key: any key
      // store.json still lists is a valid one to seal with (readers open it), and a refreshed
      // token must reach the disk even then.
      for (const k of meta.keys) {
        const held = this.#cache.get(k.kid)
        if (held) return { kid: k.kid, key: held }
      }
      throw e
    }
  }

  /** The data key `kid`, from wherever it can be had; verified against its check value (P2). */
  key(kid: string, meta = this.meta()): Promise<Buffer> {
    const cached = this.#cache.get(kid)
    if (cached) return Promise.resolve(cached)
    let p = this.#pending.get(kid)
    if (!p) {
      p = this.#find(kid, meta).finally(() => this.#pending.delete(kid))
      this.#pending.set(kid, p)
    }
    return p
  }

  /** Put a key in the cache (after creating it, or unlocking it another way); verified. */
  remember(info: KeyInfo, key: Buffer): void {
    if (!keyOpensCheck(key, info))
      throw new StoreLockedError(ERR.STORE_WRONG_PASSPHRASE, 'that key does not open the store')
    this.#cache.set(info.kid, key)
  }

  async #find(kid: string, meta: StoreMeta | undefined): Promise<Buffer> {
    const info = meta?.keys.find((k) => k.kid === kid)
    if (!info) {
      throw new StoreError(
        ERR.STORE_CORRUPT,
        `a record is sealed with key "${kid}", which ${metaPath(this.paths)} does not list`,
        {
          hint: 'Restore store.json from a backup, or move the record aside and sign in again with "mailkey add".',
        },
      )
    }
    if (this.#opts.useAgent !== false) {
      const { requestKey } = await import('./agent.js')
      const fromAgent = await requestKey(agentSocketPath(this.paths, this.#opts.env), kid).catch(() => undefined)
      if (fromAgent && keyOpensCheck(fromAgent, info)) {
        this.#cache.set(kid, fromAgent)
        return fromAgent
      }
    }
    const key = info.kind === 'keyring' ? await this.#fromKeyring(info) : await this.#fromPassphrase(info)
    this.#cache.set(kid, key)
    return key
  }

  async #fromKeyring(info: KeyringKeyInfo): Promise<Buffer> {
    const entry = await keyringEntry(info.service, info.entry)
    let v: string | null
    try {
      v = entry.get()
    } catch (e) {
      throw keyringRefused(e)
    }
    if (!v) throw keyringRefused(new Error(`no entry "${info.entry}" for service "${info.service}"`))
    const key = Buffer.from(v, 'base64')
    if (key.length !== KEY_BYTES || !keyOpensCheck(key, info))
      throw keyringRefused(new Error(`its entry "${info.entry}" holds another key`))
    return key
  }

  /** the passphrase that opened a key in this process: tried first on the others (a half-done migration lists two) */
  #goodPassphrase: string | undefined

  async #fromPassphrase(info: PassphraseKeyInfo): Promise<Buffer> {
    if (this.#goodPassphrase !== undefined) {
      const k = await openWithPassphrase(info, this.#goodPassphrase, '').catch(() => undefined)
      if (k) return k
    }
    const key = await this.#askPassphrase(info)
    return key
  }

  async #askPassphrase(info: PassphraseKeyInfo): Promise<Buffer> {
    const pc = this.#opts.passphraseCommand
    const cmd = typeof pc === 'function' ? await pc() : pc
    if (cmd) {
      const pass = await runPassphraseCommand(cmd, this.#opts.env)
      return await openWithPassphrase(
        info,
        pass,
        'passphrase_command printed a passphrase that does not open the store',
      )
    }
    const ask = this.#opts.askPassphrase
    let wrong: unknown
    if (ask) {
      for (let tries = 1; tries <= 3; tries++) {
        const pass = await ask('Passphrase for the mailkey token store: ')
        if (pass === undefined) break
        try {
          const k = await openWithPassphrase(info, pass, 'wrong passphrase for the token store')
          this.#goodPassphrase = pass
          return k
        } catch (e) {
          if (!(e instanceof StoreLockedError)) throw e
          wrong = e
        }
      }
    }
    if (wrong) throw wrong
    throw new StoreLockedError(ERR.STORE_LOCKED, 'the token store is encrypted with a passphrase and locked', {
      hint: 'Run "mailkey unlock" (asks once, then keeps the key in memory), or set passphrase_command in the [store] section of config.toml.',
    })
  }
}

export async function openWithPassphrase(info: PassphraseKeyInfo, passphrase: string, wrong: string): Promise<Buffer> {
  let key: Buffer
  try {
    key = unwrapKey(await deriveKey(passphrase, info.kdf), info.wrapped)
  } catch (e) {
    if (e instanceof SealError && /parameters/.test(e.message)) throw new StoreError(ERR.STORE_CORRUPT, e.message)
    throw new StoreLockedError(ERR.STORE_WRONG_PASSPHRASE, wrong, {
      hint: 'Try again; "mailkey store passphrase" changes it once the store is open.',
    })
  }
  if (!keyOpensCheck(key, info)) throw new StoreLockedError(ERR.STORE_WRONG_PASSPHRASE, wrong)
  return key
}

/** passphrase_command's first line (like a mail client's PassCmd); the command's errors are reported without its output. */
export async function runPassphraseCommand(cmd: string, env: Env): Promise<string> {
  const { spawnSync } = await import('node:child_process')
  const r = spawnSync('/bin/sh', ['-c', cmd], {
    env: env as NodeJS.ProcessEnv,
    encoding: 'utf8',
    timeout: 30_000,
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024,
  })
  if (r.error || r.status !== 0) {
    throw new StoreLockedError(
      ERR.STORE_LOCKED,
      `passphrase_command failed (${r.error ? r.error.message : `exit ${r.status}`})`,
      {
        hint: 'Run the command by hand to see why, or unlock with "mailkey unlock".',
      },
    )
  }
  const line = (r.stdout ?? '').split('\n')[0]?.replace(/\r$/, '') ?? ''
  if (!line)
    throw new StoreLockedError(ERR.STORE_LOCKED, 'passphrase_command printed nothing', {
      hint: 'It should print the passphrase on its first line.',
    })
  return line
}
