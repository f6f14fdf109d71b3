/**
 * Opening the system browser, and telling whether there is one to open.
 *
 * MAILKEY_BROWSER or BROWSER (a command; "%s" is replaced by the URL, else the URL is appended)
 * wins; otherwise open (macOS), start (Windows) or xdg-open (Linux with a display).
 *
 * Owns: launching the browser. Must not: wait for it.
 */
import { spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import type { Env } from '../config/paths.js'

function browserCommand(env: Env): string | undefined {
  return env.MAILKEY_BROWSER?.trim() || env.BROWSER?.trim() || undefined
}

function onPath(env: Env, name: string): boolean {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, name), constants.X_OK)
      return true
    } catch {
      /* next */
    }
  }
  return false
}

/** Can mailkey show a browser to the person at this terminal? */
export function canOpenBrowser(env: Env, platform = process.platform): boolean {
  if (browserCommand(env)) return true
  if (env.SSH_CONNECTION || env.SSH_TTY) return false
  if (platform === 'darwin' || platform === 'win32') return true
  return Boolean(env.DISPLAY || env.WAYLAND_DISPLAY) && onPath(env, 'xdg-open')
}

/** Split a BROWSER-style command line (simple quoting with "..." or '...'). */
export function splitCommand(cmd: string): string[] {
  const out: string[] = []
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g
  let m
  while ((m = re.exec(cmd)) !== null) out.push(m[1] ?? m[2] ?? m[3] ?? '')
  return out
}

export function openBrowser(url: string, env: Env, platform = process.platform): Promise<boolean> {
  let argv: string[]
  const custom = browserCommand(env)
  if (custom) {
    const parts = splitCommand(custom)
    argv = parts.some((p) => p.includes('%s')) ? parts.map((p) => p.replaceAll('%s', url)) : [...parts, url]
  } else if (platform === 'darwin') {
    argv = ['open', url]
  } else if (platform === 'win32') {
    argv = ['cmd', '/c', 'start', '""', url.replace(/&/g, '^&')]
  } else {
    argv = ['xdg-open', url]
  }
  return new Promise((resolve) => {
    const [cmd, ...args] = argv
    if (!cmd) return resolve(false)
    try {
      const child = spawn(cmd, args, { stdio: 'ignore', detached: true, env: env as NodeJS.ProcessEnv })
      child.once('error', () => resolve(false))
      child.once('spawn', () => {
        child.unref()
        resolve(true)
      })
    } catch {
      resolve(false)
    }
  })
}
