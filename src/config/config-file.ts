/**
 * config.toml as a long-running process sees it: parsed on first use and again only when the file
 * changes (size, mtime, inode), so every reader (settings, grant policies, hooks, the store's
 * passphrase command) follows the file alike. The parser (smol-toml) loads on first use only.
 *
 * Owns: the parse cache. Must not: decide what a setting means (config/settings.ts does).
 */
import { statSync } from 'node:fs'
import type { Config } from './config.js'

export class ConfigFile {
  readonly path: string
  #cached: { stamp: string; value: Promise<Config> } | undefined

  constructor(path: string) {
    this.path = path
  }

  /** The parsed file, undefined when there is none. A broken file rejects; it is not remembered as broken. */
  async load(): Promise<Config | undefined> {
    let st
    try {
      st = statSync(this.path)
    } catch {
      return undefined
    }
    const stamp = `${st.size}:${st.mtimeMs}:${st.ino}`
    if (this.#cached?.stamp !== stamp) {
      const { loadConfig } = await import('./config.js')
      const value = loadConfig(this.path)
      this.#cached = { stamp, value }
      value.catch(() => {
        if (this.#cached?.value === value) this.#cached = undefined
      })
    }
    return this.#cached.value
  }

  /** The parsed file, or undefined when there is none or it is broken (for courtesies: hooks, horizons). */
  async loadOrNothing(): Promise<Config | undefined> {
    return this.load().catch(() => undefined)
  }
}
