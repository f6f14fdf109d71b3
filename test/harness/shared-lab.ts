// The lab of the shared-store tests (issue 14): a real PostgreSQL, the lab OAuth server and a fleet
// over them whose store is made (`mailkey store init` on its first host); when asked, Dovecot taking
// the lab's tokens and the SMTP submission server in front of it; the device sign-in of an account
// with the flags that reach them; one stop for all of it. It starts no `mailkey serve` or `mailkey
// proxy` (the tests do, and stop them first) and signs nobody in by itself.
import assert from 'node:assert/strict'
import { introspectionUrl, startOAuthServer, type LabServer, type OAuthServerOptions } from './oauth-server.js'
import { postgresAvailable, startPostgres, POSTGRES_INSTALL_HINT, type PgServer } from './postgres.js'
import { dovecotAvailable, startDovecot, DOVECOT_INSTALL_HINT, type Dovecot } from './dovecot.js'
import { startSmtp, type Smtp } from './smtp-server.js'
import { labSignInFlags, makeFleet, signInShared, type FleetStore, type Host } from './fleet.js'
import type { AccountRecord } from '../../src/domain/account.js'

export interface SharedLabOptions {
  /** the OAuth server's options (default: a device interval of 1 s) */
  oauth?: OAuthServerOptions
  /** more environment for every host of the fleet */
  fleetEnv?: Record<string, string>
  /** the first host's name, the one that makes the store (default "admin") */
  admin?: string
  /** Dovecot in front of the lab ("imap"), and the SMTP submission server too ("imap+smtp") */
  mail?: 'imap' | 'imap+smtp'
}

export interface SharedLab {
  pg: PgServer
  lab: LabServer
  fleet: FleetStore
  /** the host that ran `mailkey store init` */
  admin: Host
  /** with `mail` */
  dovecot?: Dovecot
  /** with `mail: 'imap+smtp'` */
  smtp?: Smtp
  /** `mailkey add EMAIL --device` on the admin host, with the lab's flags and the mail servers' */
  signIn(email: string): Promise<AccountRecord>
  stop(): Promise<void>
}

/**
 * The describe's `skip` for a lab with (or without) Dovecot: false when all is installed, else what
 * is missing; under CI a missing tool is an error, naming what to install, rather than a skip.
 */
export function sharedLabSkip(what: string, o: { mail?: boolean } = {}): string | false {
  const missing = [!postgresAvailable() && 'postgresql', o.mail && !dovecotAvailable() && 'dovecot'].filter(Boolean)
  if (missing.length && process.env.CI)
    throw new Error(`${what} need ${POSTGRES_INSTALL_HINT}${o.mail ? ` and ${DOVECOT_INSTALL_HINT}` : ''}`)
  return missing.length ? `${missing.join(', ')} not installed` : false
}

/** Start the lab; what started before a failure is stopped again. */
export async function startSharedLab(o: SharedLabOptions = {}): Promise<SharedLab> {
  const parts: Partial<SharedLab> = {}
  const stop = async (): Promise<void> => {
    await parts.fleet?.cleanup()
    await parts.smtp?.stop()
    await parts.dovecot?.stop()
    await Promise.all([parts.pg?.close(), parts.lab?.close()])
  }
  try {
    ;[parts.pg, parts.lab] = await Promise.all([startPostgres(), startOAuthServer(o.oauth ?? { deviceInterval: 1 })])
    if (o.mail) await startMail(parts as SharedLab, o.mail)
    parts.fleet = await makeFleet(parts.pg, o.fleetEnv)
    parts.admin = await parts.fleet.host(o.admin ?? 'admin')
    const init = await parts.admin.cli(['store', 'init'])
    assert.equal(init.code, 0, init.stderr)
  } catch (e) {
    await stop()
    throw e
  }
  const started = parts as SharedLab
  started.stop = stop
  started.signIn = (email) => signInShared(started.lab, started.admin, started.fleet, email, signInFlags(started))
  return started
}

async function startMail(parts: SharedLab, mail: 'imap' | 'imap+smtp'): Promise<void> {
  const dovecot = await startDovecot({ introspectionUrl: introspectionUrl(parts.lab.issuer) })
  parts.dovecot = dovecot
  if (mail === 'imap+smtp')
    parts.smtp = await startSmtp({
      introspect: (t, s) => parts.lab.introspect(t, { service: s }),
      tls: { certFile: dovecot.certFile, keyFile: dovecot.keyFile },
    })
}

/** the lab's sign-in flags, and the IMAP (and SMTP) server with the CA to trust when there is mail */
function signInFlags(l: SharedLab): string[] {
  const flags = labSignInFlags(l.lab)
  if (l.dovecot) flags.push('--imap-url', `imaps://localhost:${l.dovecot.ports.imaps}`)
  if (l.smtp) flags.push('--smtp-url', `smtp://localhost:${l.smtp.ports.submission}`)
  if (l.dovecot) flags.push('--ca', l.dovecot.caFile)
  return flags
}
