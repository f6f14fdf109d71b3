/**
 * mailkey's version, as package.json says: put into the bundled executable at build time
 * (esbuild --define:MAILKEY_VERSION), else read from the package.json two levels above this module
 * (dist/cli/ in a package, src/cli/ in a clone).
 *
 * Owns: where the version comes from. Must not: print.
 */
import { readFileSync } from 'node:fs'

declare const MAILKEY_VERSION: string | undefined

export function mailkeyVersion(): string {
  if (typeof MAILKEY_VERSION === 'string' && MAILKEY_VERSION !== '') return MAILKEY_VERSION
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}
