/**
 * What this process may still open: its file-descriptor limit, and whether it has run out right
 * now. glibc's getaddrinfo() answers "no such host" (ENOTFOUND) when it cannot open /etc/hosts or a
 * socket for lack of descriptors, so a failed lookup is checked here before it is called a wrong
 * host name (measured on Node 20 / glibc: lookup('localhost') at the limit gives ENOTFOUND).
 *
 * Owns: probing the descriptor table. Must not: import anything from mailkey, or keep what it
 * opens (the probe closes at once).
 */
import { closeSync, openSync, readFileSync } from 'node:fs'
import { devNull } from 'node:os'

/**
 * 'EMFILE' or 'ENFILE' when no file descriptor can be opened right now, else undefined. One
 * open() and close() of the null device; call it only after something failed.
 */
export function descriptorShortage(): 'EMFILE' | 'ENFILE' | undefined {
  try {
    closeSync(openSync(devNull, 'r'))
    return undefined
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    return code === 'EMFILE' || code === 'ENFILE' ? code : undefined
  }
}

/**
 * The soft limit on open files of this process (Node raises it to the hard limit at start), from
 * /proc/self/limits; undefined where there is no /proc (macOS) or it says "unlimited".
 */
export function openFileLimit(limitsFile = '/proc/self/limits'): number | undefined {
  let text: string
  try {
    text = readFileSync(limitsFile, 'utf8')
  } catch {
    return undefined
  }
  const m = /^Max open files\s+(\d+)\s/m.exec(text)
  return m ? Number(m[1]) : undefined
}
