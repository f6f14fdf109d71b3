// Real headless Chromium for browser tests, driven by chromium-open.mjs (a BROWSER command).
import { accessSync, constants } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** Where Chromium is looked for after $LAB_CHROMIUM (Debian's /usr/bin/chromium wrapper is noisy: target first). */
export const CHROMIUM_CANDIDATES = ['/usr/lib/chromium/chromium', '/usr/bin/chromium', '/usr/bin/chromium-browser']

export function chromiumPath(): string | undefined {
  const candidates = [process.env.LAB_CHROMIUM, ...CHROMIUM_CANDIDATES].filter((p): p is string => Boolean(p))
  return candidates.find((path) => {
    try {
      accessSync(path, constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

export function chromiumAvailable(): boolean {
  return chromiumPath() !== undefined
}

/** Absolute path of chromium-open.mjs. */
export function chromiumOpenScript(): string {
  return fileURLToPath(new URL('./chromium-open.mjs', import.meta.url))
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

/**
 * Command line for a BROWSER environment variable: the URL is appended as the last argument.
 * Uses this process's node binary; adds --experimental-websocket where WebSocket is not built in (Node < 22).
 */
export function chromiumOpenCommand(): string {
  const major = Number(process.versions.node.split('.')[0])
  const words = [process.execPath, ...(major < 22 ? ['--experimental-websocket'] : []), chromiumOpenScript()]
  return words.map(shellQuote).join(' ')
}
