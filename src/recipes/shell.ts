/**
 * Quoting for the commands that recipes put into configuration files: POSIX shell words
 * (msmtp's passwordeval and mbsync's PassCmd run through /bin/sh), and double-quoted strings for
 * formats that quote that way. Owns: quoting. Must not: do I/O.
 */
import { shArg } from '../core/address.js'

/** One POSIX sh word: bare when it is plainly safe, otherwise in single quotes. */
export const shWord = shArg

/** argv as one sh command line. */
export function shCommand(argv: string[]): string {
  return argv.map(shWord).join(' ')
}

/** A double-quoted string with \ and " escaped: isync (mbsync) and git config unescape exactly these. (msmtp does not: msmtp.ts.) */
export function dquote(s: string): string {
  if (/[\x00-\x1f\x7f]/.test(s)) throw new RangeError('a configuration value cannot hold control characters')
  return `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`
}
