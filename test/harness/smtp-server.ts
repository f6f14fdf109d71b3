// A real SMTP submission server for tests (nodemailer's smtp-server): XOAUTH2 and OAUTHBEARER only,
// every bearer token checked by RFC 7662 introspection (service smtp, so the token needs SMTP.Send),
// and the SASL user must be the token's email. Two loopback listeners: submission (STARTTLS required
// before AUTH) and smtps (implicit TLS). Accepted mail is recorded, and mail for local users can be
// delivered into their Maildirs (the ones Dovecot serves). Nothing ever leaves the host.
// It must not log tokens: smtp-server's logger is off, and errors never quote a SASL line.
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, stat, chown, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { SMTPServer } from 'smtp-server'
import type {
  SMTPServerAuthentication,
  SMTPServerAuthenticationResponse,
  SMTPServerOptions,
  SMTPServerSession,
} from 'smtp-server'
import SASL from 'smtp-server/lib/sasl.js'
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection.js'

/** The XOAUTH2 error challenge Microsoft's SMTP sends (and what the tests expect). */
export const XOAUTH2_SMTP_CHALLENGE = {
  status: '401',
  schemes: 'bearer',
  scope: 'https://outlook.office.com/SMTP.Send',
} as const

/** RFC 7628 §3.2.2 error challenge for OAUTHBEARER. */
export const OAUTHBEARER_SMTP_CHALLENGE = {
  status: 'invalid_token',
  schemes: 'bearer',
  scope: 'https://outlook.office.com/SMTP.Send',
} as const

export interface SmtpOptions {
  /** RFC 7662 introspection of a bearer token (e.g. `(t, s) => lab.introspect(t, { service: s })`). */
  introspect: (token: string, service: 'smtp') => Promise<Record<string, unknown>>
  /** Server certificate and key (PEM files), e.g. from makeTestCA() or a running Dovecot. */
  tls: { certFile: string; keyFile: string }
  /**
   * The Maildir of a local recipient, or undefined. Mail to a recipient whose Maildir exists is
   * written into its `new/` (owned like the Maildir); everything else is only recorded.
   */
  deliverTo?: (user: string) => string | undefined
  /** Also offer OAUTHBEARER (RFC 7628) next to XOAUTH2 (default true). */
  oauthbearer?: boolean
  /**
   * Mailboxes whose SMTP AUTH is switched off, as Microsoft does per mailbox or tenant: a valid
   * token for such a user gets SMTP_AUTH_DISABLED_REPLY (535 5.7.139) instead of 235.
   */
  authDisabledFor?: (user: string) => boolean
}

/**
 * Microsoft's answer after a valid token when SMTP AUTH is disabled for the mailbox (see
 * learn.microsoft.com/exchange/clients-and-mobile-in-exchange-online/authenticated-client-smtp-submission;
 * the wording as captured in github.com/simonrob/email-oauth2-proxy issue 193 ("...for the Tenant")
 * and thunderbird/thunderbird-android issue 11198 ("...for the Mailbox")). The bracket, a front-end
 * server, a timestamp and an id, is made up.
 */
export const SMTP_AUTH_DISABLED_REPLY =
  '5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit ' +
  'https://aka.ms/smtp_auth_disabled for more information. ' +
  '[SN4PR0601CA0012.namprd06.prod.outlook.com 2026-06-26T10:00:00.000Z 08DCA0B0C0D0E0F0]'

export interface ReceivedMail {
  from: string
  to: string[]
  /** The authenticated user (the token's email). */
  user: string
  size: number
  /** Recipients that were delivered into a Maildir. */
  delivered: string[]
}

export interface Smtp {
  host: '127.0.0.1'
  ports: {
    /** Submission: STARTTLS required before AUTH (538 otherwise). */
    submission: number
    /** Implicit TLS. */
    smtps: number
  }
  /** Mechanisms offered after TLS. */
  authMethods: string[]
  /** Every accepted message, in order. */
  received: ReceivedMail[]
  /** Live counters: valid tokens refused with 535 5.7.139 (authDisabledFor). */
  counts: { authDisabled: number }
  stop(): Promise<void>
}

type AuthCallback = (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void

class SmtpAuthError extends Error {
  responseCode: number
  constructor(message: string, responseCode: number) {
    super(message)
    this.responseCode = responseCode
  }
}

// RFC 7628 §3.1: gs2-header with an optional authzid, where "," and "=" are escaped as =2C / =3D.
function parseOAuthBearer(blob: string): { user?: string; token?: string } | undefined {
  const parts = Buffer.from(blob, 'base64').toString('utf8').split('\x01')
  const header = parts.shift() ?? ''
  const gs2 = /^(?:n|y|p=[^,]*),(?:a=([^,]*))?,$/.exec(header)
  if (!gs2) return undefined
  const user = gs2[1]?.replace(/=2C/gi, ',').replace(/=3D/gi, '=')
  let token: string | undefined
  for (const kv of parts) {
    const eq = kv.indexOf('=')
    if (eq > 0 && kv.slice(0, eq) === 'auth') {
      const m = /^bearer\s+(\S+)$/i.exec(kv.slice(eq + 1).trim())
      token = m?.[1]
    }
  }
  return { user: user || undefined, token }
}

/**
 * OAUTHBEARER for smtp-server. Its onAuth hook only sees mechanisms the library parses itself, so
 * the SASL framing is added to the library's mechanism table (the public `smtp-server/lib/sasl.js`
 * export, pinned version); verification still goes through the server's onAuth, like XOAUTH2.
 */
function oauthBearerMechanism(this: SMTPConnection, args: string[], callback: () => void): void {
  if (args.length > 1) {
    this.send(501, 'Error: syntax: AUTH OAUTHBEARER token')
    return callback()
  }
  if (args.length === 0) {
    this._nextHandler = function (this: SMTPConnection, line: Buffer, done: () => void): void {
      oauthBearerToken.call(this, line.toString('latin1').trim(), done)
    }
    this.send(334, '')
    return callback()
  }
  oauthBearerToken.call(this, args[0] ?? '', callback)
}

function oauthBearerToken(this: SMTPConnection, blob: string, callback: () => void): void {
  if (blob === '*') {
    this.send(501, 'Authentication aborted')
    return callback()
  }
  const parsed = parseOAuthBearer(blob)
  if (!parsed?.token || (parsed.user !== undefined && SASL.CONTROL_CHARS.test(parsed.user))) {
    this.send(501, 'Error: invalid userdata')
    return callback()
  }
  const auth = { method: 'OAUTHBEARER', username: parsed.user, accessToken: parsed.token }
  this._server.onAuth(auth as unknown as SMTPServerAuthentication, this.session, (err, response) => {
    if (err) {
      this.send((err as SmtpAuthError).responseCode || 535, err.message)
      return callback()
    }
    if (!response?.user) {
      // RFC 7628 §3.2.3: the client answers the error challenge with a single %x01, then fails.
      this._nextHandler = function (this: SMTPConnection, _line: Buffer, done: () => void): void {
        this.send(535, 'Error: authentication failed')
        done()
      }
      this.send(334, Buffer.from(JSON.stringify(response?.data ?? OAUTHBEARER_SMTP_CHALLENGE)).toString('base64'))
      return callback()
    }
    this.session.user = response.user
    this.session.transmissionType = this._transmissionType()
    this.send(235, 'Authentication successful')
    callback()
  })
}

let oauthBearerInstalled = false

function installOAuthBearer(): boolean {
  const table = SASL as unknown as Record<string, unknown>
  if (typeof table.SASL_XOAUTH2 !== 'function') return false // not the library this was written for
  if (!oauthBearerInstalled) {
    table.SASL_OAUTHBEARER = oauthBearerMechanism
    oauthBearerInstalled = true
  }
  return true
}

async function deliver(maildir: string, message: Buffer): Promise<boolean> {
  let owner
  try {
    owner = await stat(join(maildir, 'new'))
  } catch {
    return false
  }
  const name = `${Math.floor(Date.now() / 1000)}.R${randomBytes(6).toString('hex')}.${hostname()},S=${message.length}`
  const tmp = join(maildir, 'tmp', name)
  await mkdir(join(maildir, 'tmp'), { recursive: true })
  await writeFile(tmp, message, { mode: 0o600 })
  await chown(tmp, owner.uid, owner.gid)
  await rename(tmp, join(maildir, 'new', name))
  return true
}

function listen(server: SMTPServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve((server.server.address() as AddressInfo).port)
    })
  })
}

export async function startSmtp(opts: SmtpOptions): Promise<Smtp> {
  const [cert, key] = await Promise.all([readFile(opts.tls.certFile), readFile(opts.tls.keyFile)])
  const authMethods = ['XOAUTH2']
  if (opts.oauthbearer !== false && installOAuthBearer()) authMethods.push('OAUTHBEARER')
  const received: ReceivedMail[] = []
  const counts = { authDisabled: 0 }

  function onAuth(auth: SMTPServerAuthentication, _session: SMTPServerSession, callback: AuthCallback): void {
    const method = auth.method as string
    const token = auth.accessToken
    if ((method !== 'XOAUTH2' && method !== 'OAUTHBEARER') || !token) {
      callback(new SmtpAuthError('Error: Unrecognized authentication type', 504))
      return
    }
    const challenge = method === 'XOAUTH2' ? XOAUTH2_SMTP_CHALLENGE : OAUTHBEARER_SMTP_CHALLENGE
    opts.introspect(token, 'smtp').then(
      (info) => {
        const email = typeof info.email === 'string' ? info.email : undefined
        const user = auth.username ?? email
        if (info.active === true && email && user && user.toLowerCase() === email.toLowerCase()) {
          if (opts.authDisabledFor?.(email)) {
            counts.authDisabled += 1
            callback(new SmtpAuthError(SMTP_AUTH_DISABLED_REPLY, 535))
            return
          }
          callback(null, { user: email })
        } else {
          // smtp-server answers 334 <base64 JSON>, then 535 once the client replies.
          callback(null, { data: { ...challenge } })
        }
      },
      () => {
        // The authorization server could not be asked: a temporary failure, not a bad token.
        callback(new SmtpAuthError('Temporary authentication failure', 454))
      },
    )
  }

  async function onData(stream: NodeJS.ReadableStream, session: SMTPServerSession): Promise<ReceivedMail> {
    const chunks: Buffer[] = []
    for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
    const body = Buffer.concat(chunks)
    const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : ''
    const to = session.envelope.rcptTo.map((r) => r.address)
    const user = String(session.user ?? '')
    const header = Buffer.from(
      [
        `Return-Path: <${from}>`,
        `Received: from ${session.hostNameAppearsAs} ([${session.remoteAddress}]) by localhost (mailkey testbed)`,
        ` with ${session.transmissionType} (authenticated as ${user}); ${new Date().toUTCString()}`,
        '',
      ].join('\r\n'),
    )
    const delivered: string[] = []
    for (const rcpt of to) {
      let maildir: string | undefined
      try {
        maildir = opts.deliverTo?.(rcpt)
      } catch {
        maildir = undefined
      }
      if (maildir && (await deliver(maildir, Buffer.concat([header, body])))) delivered.push(rcpt)
    }
    return { from, to, user, size: body.length, delivered }
  }

  function makeServer(secure: boolean): SMTPServer {
    const options: SMTPServerOptions = {
      secure,
      key,
      cert,
      name: 'localhost',
      banner: 'mailkey testbed',
      authMethods,
      authOptional: false, // MAIL FROM needs AUTH (530 otherwise)
      allowInsecureAuth: false, // AUTH before STARTTLS: 538
      disableReverseLookup: true,
      logger: false, // SASL lines carry tokens
      size: 10 * 1024 * 1024,
      closeTimeout: 500,
      onAuth,
      onData(stream, session, callback) {
        onData(stream, session).then(
          (mail) => {
            received.push(mail)
            callback()
          },
          (err: Error) => callback(err),
        )
      },
    }
    const server = new SMTPServer(options)
    server.on('error', () => {
      /* per-connection errors; the client sees them */
    })
    return server
  }

  const submission = makeServer(false)
  const smtps = makeServer(true)
  const ports = { submission: await listen(submission), smtps: await listen(smtps) }

  let stopped: Promise<void> | undefined
  return {
    host: '127.0.0.1',
    ports,
    authMethods: [...authMethods],
    received,
    counts,
    stop() {
      stopped ??= Promise.all(
        [submission, smtps].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
      ).then(() => undefined)
      return stopped
    },
  }
}
