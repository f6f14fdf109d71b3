/**
 * How a mail client runs this mailkey. Configs that mailkey prints name a command (`passwordeval`,
 * `PassCmd`, …) that the client runs later, with its own PATH: "mailkey" works only when a
 * `mailkey` is found there. `npx mailkey` finds this one in node_modules/.bin, which only npm's own
 * commands put on PATH, so a `mailkey` found there does not count.
 *
 * Owns: finding this installation's command and the `mailkey` on PATH. Must not: print.
 */
import { realpathSync } from 'node:fs'
import { basename, dirname, isAbsolute } from 'node:path'
import { findOnPath } from './path-lookup.js'

export interface SelfCommand {
  /** the words that run mailkey: ["mailkey"] when one is on PATH, else this one's absolute command */
  argv: string[]
  /** the `mailkey` a mail client finds on PATH, if any */
  found?: string
  /** true when that is this very installation */
  same: boolean
  /** this installation's absolute command, whatever PATH holds (systemd units want it) */
  absolute: string[]
}

export interface Installation {
  /** the Node binary running us (a single executable: the executable itself) */
  execPath: string
  /** the script Node runs (process.argv[1]); undefined in a single executable */
  script: string | undefined
}

/** this process's installation: a single executable has no script of its own */
export async function thisInstallation(): Promise<Installation> {
  const sea = await import('node:sea').then(
    (m) => m.isSea(),
    () => false,
  )
  return { execPath: process.execPath, script: sea ? undefined : process.argv[1] }
}

/** the command a mail client should run to reach this installation, given the PATH it will have */
export function selfCommand(me: Installation, env: NodeJS.ProcessEnv): SelfCommand {
  const real = (p: string): string => {
    try {
      return realpathSync(p)
    } catch {
      return p
    }
  }
  const exec = real(me.execPath)
  const script = me.script !== undefined && isAbsolute(me.script) ? real(me.script) : undefined
  // Node by its path too, never "#!/usr/bin/env node": cron and systemd start mail clients with
  // PATH=/usr/bin:/bin, where an nvm Node is not, and Debian 12's node there is 18
  const absolute = script === undefined ? [exec] : [exec, script]
  // a relative PATH entry means another directory to a mail client; npx's .bin is not its PATH
  const found = findOnPath(
    'mailkey',
    env,
    (dir) => !dir || !isAbsolute(dir) || (basename(dir) === '.bin' && basename(dirname(dir)) === 'node_modules'),
  )
  // another mailkey on PATH (a wrapper, a shim, another version) reads the same store: keep the
  // short name, which survives upgrades, and let notOnPathNote say which one clients will run
  if (found) return { argv: ['mailkey'], found, same: real(found) === (script ?? exec), absolute }
  return { argv: absolute, same: false, absolute }
}

/** one line for stderr when mail clients would not run this mailkey as "mailkey", else undefined */
export function notOnPathNote(s: SelfCommand, self: string): string | undefined {
  if (s.same) return undefined
  if (s.found) return `mail clients will run the "mailkey" on PATH, ${s.found}, which is not this one (${self}).`
  return `no "mailkey" is on PATH (npx finds it, mail clients do not), so this names it by its full path: ${self}. To call it "mailkey", put it on PATH: "npm link" in its clone (or "sudo npm link"), or a symbolic link in ~/.local/bin.`
}
