/**
 * A broker's settings snapshot (config/settings.ts): options > env > config.toml > defaults, taken
 * afresh when the file changes. A broken file rejects when the margin has to come from it, unless
 * an earlier snapshot is there to keep using (a proxy keeps working while its config is edited).
 *
 * Owns: the last good snapshot. Must not: decide what a setting means.
 */
import type { Env } from '../config/paths.js'
import type { ConfigFile } from '../config/config-file.js'
import type { Config } from '../config/config.js'
import { needsFile, resolveSettings, settingsOptions, type Settings } from '../config/settings.js'

export class SettingsSource {
  readonly #options: Partial<Settings>
  readonly #env: Env
  readonly #config: ConfigFile
  #lastGood: Settings | undefined

  constructor(options: Partial<Settings>, env: Env, config: ConfigFile) {
    this.#options = settingsOptions(options)
    this.#env = env
    this.#config = config
  }

  async get(): Promise<Settings> {
    let file: Config | undefined
    try {
      file = await this.#config.load()
    } catch (e) {
      if (!needsFile(this.#options, this.#env)) return resolveSettings(this.#options, this.#env, undefined)
      if (this.#lastGood) return this.#lastGood
      throw e
    }
    return (this.#lastGood = resolveSettings(this.#options, this.#env, file))
  }
}
