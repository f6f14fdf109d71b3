/**
 * Is a secret file (the store key, a pgpass file) private enough to use? Its mode must give
 * nothing to group or others, except for a systemd credential: systemd writes those mode 0400 and
 * lets the service's own user read them through a POSIX ACL entry, whose mask `stat` shows in the
 * group bits (0440) although no group can read the file (systemd's exec-credential.c,
 * write_credential). A file directly in $CREDENTIALS_DIRECTORY may therefore show group read, never
 * group write nor anything for others.
 *
 * Owns: that rule. Must not: read or open the file.
 */
import { dirname, isAbsolute, resolve } from 'node:path'
import type { Env } from '../../config/paths.js'

export function privateMode(mode: number, path: string, env: Env): boolean {
  if ((mode & 0o077) === 0) return true
  const creds = env.CREDENTIALS_DIRECTORY
  const inCredentials = !!creds && isAbsolute(creds) && dirname(resolve(path)) === resolve(creds)
  return inCredentials && (mode & 0o037) === 0
}
