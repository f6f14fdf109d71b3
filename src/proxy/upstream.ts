/**
 * The proxy's upstream half: for a client that passed its local login, sign in to the account's
 * real server with OAuth (implicit TLS or STARTTLS, certificate verified, XOAUTH2/OAUTHBEARER) and
 * hand back the authenticated socket for splicing. A token the server refuses although it looked
 * valid is force-refreshed once and tried again.
 *
 * Owns: the upstream login and the error -> LoginOutcome mapping. Must not: talk to the client.
 */
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { failureOutcome } from './outcome.js'
import type { TokenSource } from './token-source.js'
import type { AccountRecord } from '../domain/account.js'
import type { SaslMechanism } from '../providers/types.js'
import { presetNamed } from '../providers/registry.js'
import { mechanismsFor } from '../domain/provider-rules.js'
import type { Secret } from '../core/secret.js'
import { encodeSasl } from '../sasl/index.js'
import { ProbeFailure, imapLogin, pop3Login, smtpLogin } from '../upstream/dialogues.js'
import { diagnose } from '../upstream/diagnose.js'
import { openTransport, parseServer, type LineTransport } from '../upstream/transport.js'
import type { LoginOutcome } from '../protocols/shared/session.js'

export type ProxyProtocol = 'imap' | 'pop3' | 'smtp'

export interface UpstreamLogin {
  outcome: LoginOutcome
  /** on 'ok': the authenticated upstream socket and bytes it sent that nobody read yet */
  upstream?: { socket: Socket | TLSSocket; pending: Buffer }
  /** on 'ok' with `keepTransport`: the logged-in session itself, still line-framed (`mailkey send`) */
  transport?: LineTransport
  /** for the log: why it failed (no secrets) */
  reason?: string
  /** the SMTP server said SMTP AUTH is switched off for the mailbox (Microsoft's 535 5.7.139) */
  smtpAuthDisabled?: true
  /** logged in for submission through Microsoft Graph: no upstream socket (graph-relay.ts) */
  graph?: true
}

const LOGIN = { imap: imapLogin, pop3: pop3Login, smtp: smtpLogin } as const
const SERVER_KEY = { imap: 'imap', pop3: 'pop', smtp: 'smtp' } as const

export interface UpstreamOptions {
  /** this server instead of the account's own */
  serverOverride?: string
  /** with serverOverride: its private CA (PEM file) instead of the account's */
  caOverride?: string
  /** the client's own SASL response (passthrough): used as is, never refreshed */
  clientSasl?: { mechanism: SaslMechanism; response: Secret }
  /** hand back the logged-in session as a LineTransport instead of its socket (not for clientSasl) */
  keepTransport?: boolean
}

export async function loginUpstream(
  tokens: Pick<TokenSource, 'record' | 'getAccessToken'>,
  protocol: ProxyProtocol,
  account: string,
  signal: AbortSignal,
  timeoutMs = 30_000,
  o: UpstreamOptions = {},
): Promise<UpstreamLogin> {
  let rec: AccountRecord | undefined
  try {
    rec = await tokens.record(account)
  } catch (e) {
    // Only a missing record (read() gives undefined) means "no such account"; running out of file
    // descriptors while reading it is an outage of this process, not a dead account.
    return failureOutcome(e)
  }
  if (!rec) return { outcome: 'config', reason: `no account "${account}" in the token store` }
  const settings = rec.settings
  const server = o.serverOverride ?? settings.servers[SERVER_KEY[protocol]]
  if (!server) return { outcome: 'config', reason: `the account has no ${protocol} server` }
  const caFile = o.serverOverride ? (o.caOverride ?? settings.ca) : settings.ca
  const target: Target = {
    protocol,
    rec,
    server,
    addr: parseServer(server),
    caFile,
    timeoutMs,
    signal,
    keep: o.keepTransport === true,
  }
  if (o.clientSasl) return withClientToken(target, o.clientSasl)
  for (let attempt = 0; attempt < 2; attempt++) {
    const r = await withOwnToken(tokens, target, attempt === 1)
    if (r !== 'refused-once') return r
  }
  return { outcome: 'config', reason: 'unreachable' }
}

/** One upstream login: where, for which account, within what time. */
interface Target {
  /** keepTransport: the session goes back line-framed, not detached */
  keep: boolean
  protocol: ProxyProtocol
  rec: AccountRecord
  server: string
  addr: ReturnType<typeof parseServer>
  caFile: string | undefined
  timeoutMs: number
  signal: AbortSignal
}

const open = (t: Target): Promise<LineTransport> =>
  openTransport(t.addr, { ...(t.caFile ? { caFile: t.caFile } : {}), timeoutMs: t.timeoutMs, signal: t.signal })

/** Pass-through: the client's own SASL response, used as is (never refreshed). */
async function withClientToken(
  target: Target,
  sasl: NonNullable<UpstreamOptions['clientSasl']>,
): Promise<UpstreamLogin> {
  const { protocol, addr, server } = target
  const settings = target.rec.settings
  let t: LineTransport | undefined
  try {
    t = await open(target)
    await LOGIN[protocol](t, {
      starttls: !addr.implicitTls,
      mechanisms: [sasl.mechanism],
      saslResponse: () => sasl.response,
    })
    const detached = t.detach()
    t = undefined
    return { outcome: 'ok', upstream: detached }
  } catch (e) {
    t?.close()
    // The client's own token was refused: that is between the client and its provider.
    if (e instanceof ProbeFailure && e.stage === 'auth')
      return { outcome: 'bad-credentials', reason: "the server refused the client's own token" }
    const d = diagnose(e, {
      protocol: SERVER_KEY[protocol],
      account: settings.email,
      mailbox: settings.email,
      server,
      freshTokenRefused: true,
      provider: settings.provider,
    })
    return { outcome: d.kind === 'protocol' ? 'transient' : d.kind, reason: d.cause }
  }
}

/**
 * One try with the account's own token; 'refused-once': the server refused a token that looked
 * valid on the first try, so the caller tries once more with a forced refresh.
 */
async function withOwnToken(
  tokens: Pick<TokenSource, 'getAccessToken'>,
  target: Target,
  forceRefresh: boolean,
): Promise<UpstreamLogin | 'refused-once'> {
  const { protocol, addr, server, rec, signal } = target
  const settings = rec.settings
  const mechanisms = mechanismsFor(settings, presetNamed(settings.provider))
  // The token and the connection (TCP + TLS handshake) are fetched at the same time: the local
  // password is already checked, and the handshake hides the token store read.
  const [conn, tok] = await Promise.allSettled([
    open(target),
    tokens.getAccessToken(settings.email, { forceRefresh, signal }),
  ])
  if (tok.status === 'rejected') {
    if (conn.status === 'fulfilled') conn.value.close()
    // issue 11 item 5: out of descriptors, or interrupted while waiting for a refresh: transient
    return failureOutcome(tok.reason)
  }
  const token = tok.value
  let t: LineTransport | undefined = conn.status === 'fulfilled' ? conn.value : undefined
  try {
    if (conn.status === 'rejected') throw conn.reason
    const tr = t as LineTransport
    await LOGIN[protocol](tr, {
      starttls: !addr.implicitTls,
      mechanisms,
      saslResponse: (mech) =>
        encodeSasl(mech, {
          user: settings.mailbox ?? settings.email,
          token: token.token,
          host: addr.host,
          port: addr.port,
        }),
    })
    t = undefined
    return target.keep ? { outcome: 'ok', transport: tr } : { outcome: 'ok', upstream: tr.detach() }
  } catch (e) {
    t?.close()
    const refused = e instanceof ProbeFailure && e.stage === 'auth'
    // Microsoft's 535 5.7.139: SMTP AUTH is off for the mailbox; a fresh token cannot change that
    const authOff = refused && protocol === 'smtp' && smtpAuthDisabled((e as ProbeFailure).reply)
    if (refused && !forceRefresh && !authOff) return 'refused-once' // refresh once, then try again
    const d = diagnose(e, {
      protocol: SERVER_KEY[protocol],
      account: settings.email,
      mailbox: settings.mailbox ?? settings.email,
      server,
      freshTokenRefused: refused,
      provider: settings.provider,
      ...(rec.grant?.scope ? { grantedScope: rec.grant.scope } : {}),
      signedInAs: rec.grant?.identity?.email ?? settings.email,
    })
    return {
      outcome: d.kind === 'protocol' ? 'transient' : d.kind,
      reason: `${d.cause}`,
      ...(authOff ? { smtpAuthDisabled: true as const } : {}),
    }
  }
}

/** Microsoft's "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox/Tenant". */
export function smtpAuthDisabled(reply: string): boolean {
  return /\b5\.7\.139\b/.test(reply) || /SmtpClientAuthentication is disabled/i.test(reply)
}
