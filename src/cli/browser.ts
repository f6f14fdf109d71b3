/**
 * Opening the system browser, and telling whether there is one to open.
 *
 * MAILKEY_BROWSER or BROWSER (a command; "%s" is replaced by what to open, else it is appended)
 * wins; otherwise open (macOS), start (Windows) or xdg-open (Linux with a display).
 *
 * What is opened is never the sign-in URL itself: a process's arguments are readable by every
 * user of the machine (`ps`), and the URL's state, PKCE challenge and redirect port are what
 * another local user needs to finish the sign-in with their own account (login CSRF). The URL
 * goes into a small HTML page that forwards to it, 0600 in a fresh 0700 directory (mkdtemp), and
 * the browser is given the page's path; the page is removed when the sign-in ends.
 *
 * Owns: launching the browser and its forwarding page. Must not: wait for it.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Env } from '../config/paths.js'
import { findOnPath } from './path-lookup.js'

function browserCommand(env: Env): string | undefined {
  return env.MAILKEY_BROWSER?.trim() || env.BROWSER?.trim() || undefined
}

/** Can mailkey show a browser to the person at this terminal? */
export function canOpenBrowser(env: Env, platform = process.platform): boolean {
  if (browserCommand(env)) return true
  if (env.SSH_CONNECTION || env.SSH_TTY) return false
  if (platform === 'darwin' || platform === 'win32') return true
  return Boolean(env.DISPLAY || env.WAYLAND_DISPLAY) && findOnPath('xdg-open', env) !== undefined
}

/**
 * Why no browser can be shown to the person at this terminal at all, or undefined when one may
 * be: on Linux and the BSDs a graphical browser needs DISPLAY (X11) or WAYLAND_DISPLAY. A
 * MAILKEY_BROWSER or BROWSER command (a text browser, a script) is taken at its word.
 */
export function noDisplayReason(env: Env, platform = process.platform): string | undefined {
  if (browserCommand(env)) return undefined
  if (platform === 'darwin' || platform === 'win32') return undefined
  if (env.DISPLAY || env.WAYLAND_DISPLAY) return undefined
  return 'there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)'
}

/** Split a BROWSER-style command line (simple quoting with "..." or '...'). */
export function splitCommand(cmd: string): string[] {
  const out: string[] = []
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g
  let m
  while ((m = re.exec(cmd)) !== null) out.push(m[1] ?? m[2] ?? m[3] ?? '')
  return out
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** The forwarding page: a meta refresh, and a link for browsers that do not follow one. */
export function redirectPage(url: string): string {
  const u = escapeHtml(url)
  return (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">' +
    `<meta http-equiv="refresh" content="0;url=${u}"><title>mailkey sign-in</title></head>` +
    `<body><p>Opening the sign-in page… If nothing happens, <a href="${u}">continue here</a>.</p></body></html>\n`
  )
}

export interface BrowserLauncher {
  /** open `url` through a private forwarding page; true when a browser was started */
  open(url: string): Promise<boolean>
  /** remove the forwarding pages (call when the sign-in has ended, however it ended) */
  cleanup(): Promise<void>
}

/** A launcher whose pages live in `env.TMPDIR` (else the system's temp directory). */
export function browserLauncher(env: Env, platform = process.platform): BrowserLauncher {
  const dirs: string[] = []
  return {
    async open(url) {
      let page: string
      try {
        // mkdtemp: a new directory, 0700, that nobody could have prepared; the page inside is 0600.
        const dir = await mkdtemp(join(env.TMPDIR || tmpdir(), 'mailkey-signin-'))
        dirs.push(dir)
        page = join(dir, 'sign-in.html')
        await writeFile(page, redirectPage(url), { mode: 0o600, flag: 'wx' })
      } catch {
        return false // no private page, no browser: the URL is shown in the terminal instead
      }
      return openBrowser(page, env, platform)
    },
    async cleanup() {
      await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true }).catch(() => {})))
    },
  }
}

/** Start the browser on `target` (a file path or URL); true when it started. */
export function openBrowser(target: string, env: Env, platform = process.platform): Promise<boolean> {
  let argv: string[]
  const custom = browserCommand(env)
  if (custom) {
    const parts = splitCommand(custom)
    argv = parts.some((p) => p.includes('%s')) ? parts.map((p) => p.replaceAll('%s', target)) : [...parts, target]
  } else if (platform === 'darwin') {
    argv = ['open', target]
  } else if (platform === 'win32') {
    argv = ['cmd', '/c', 'start', '""', target.replace(/&/g, '^&')]
  } else {
    argv = ['xdg-open', target]
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
