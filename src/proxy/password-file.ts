/**
 * The saved copy of an account's local proxy password, for mail clients that read it with a
 * command (`mailkey proxy password <email> --save` writes it; every `mailkey config <client>
 * <email> --via proxy` recipe reads it with `passwordCommand`). One file per account, since each
 * account has its own local password: <config dir>/proxy-passwords/<account file name>, the
 * directory 0700, the file 0600, written atomically and never through a symbolic link.
 *
 * Owns: that path (as a file path and as the sh command the recipes print) and writing it.
 * Must not: keep or check the proxy's hashes (passwords.ts), print anything.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Secret } from '../core/secret.js'
import { accountId } from '../domain/account.js'
import { checkPrivate, DIR_MODE, writeFileAtomic } from '../store/atomic-file.js'

const DIR = 'proxy-passwords'

/**
 * The account's file name: the account id with every byte outside [A-Za-z0-9._@+-] as %XX, so it
 * is one path segment (no "/"), needs no quoting in sh and no escapes in any client's format.
 */
export function passwordFileName(email: string): string {
  return Array.from(accountId(email), (c) =>
    /^[A-Za-z0-9._@+-]$/.test(c)
      ? c
      : Array.from(Buffer.from(c, 'utf8'), (b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  ).join('')
}

/** The file `--save` writes, under mailkey's config directory (config/paths.ts: configDir). */
export function passwordFilePath(configDir: string, email: string): string {
  return join(configDir, DIR, passwordFileName(email))
}

/** The sh command the recipes print: the same file, found through $XDG_CONFIG_HOME or $HOME at run time. */
export function passwordFileCommand(email: string): string {
  return `cat "\${XDG_CONFIG_HOME:-$HOME/.config}/mailkey/${DIR}/${passwordFileName(email)}"`
}

/**
 * Write the password (and a newline, as every client's password command takes it) to the
 * account's file: the directory made 0700 and refused when it is a symbolic link, another user's
 * or open to others; the file replaced by rename (a symbolic link there is replaced, not followed).
 * Returns the path.
 */
export async function savePasswordFile(configDir: string, email: string, password: Secret): Promise<string> {
  const dir = join(configDir, DIR)
  await mkdir(dir, { recursive: true, mode: DIR_MODE })
  await checkPrivate(dir, 'dir')
  const path = passwordFilePath(configDir, email)
  await writeFileAtomic(path, password.reveal() + '\n')
  return path
}
