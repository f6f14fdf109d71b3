/**
 * The contract between the proxy (sockets) and the pre-auth protocol sessions (pure state
 * machines, one per client connection): bytes in, actions out. A session speaks the mail protocol
 * to the *client* until the client has logged in with a local username and password; then the
 * proxy authenticates upstream with OAuth and splices the two connections byte for byte.
 *
 * Owns: the action/outcome types and the limits. Must not: import node:net, node:tls or the broker.
 */
import type { Secret } from '../../core/secret.js'

export type ClientAction =
  /** write this to the client (CRLF included) */
  | { type: 'reply'; data: string }
  /**
   * the client gave a local username and password: the proxy checks them, signs in upstream, and
   * calls `loginResult`. The session reads no further input until then.
   */
  | { type: 'login'; username: string; password: Secret }
  /**
   * the client speaks OAuth itself (AUTHENTICATE XOAUTH2/OAUTHBEARER): the proxy passes its SASL
   * response, untouched, to the account's server (no local password; the token is the client's)
   * and calls `loginResult` with the outcome. `token` is the bearer value inside `response`: the
   * proxy first checks it as the local password, which is never forwarded (proxy/login-check.ts).
   */
  | { type: 'passthrough'; username: string; mechanism: 'XOAUTH2' | 'OAUTHBEARER'; response: Secret; token: Secret }
  /** the reply before this action agreed to STARTTLS/STLS: upgrade the client connection now */
  | { type: 'starttls' }
  /** write `data` (if any) and close the client connection */
  | { type: 'close'; data?: string }

/**
 * The proxy's verdict on a login (STYLE.md §5 wire mapping):
 * - ok: upstream accepted the token; the session is over, splice now
 * - bad-credentials: wrong local password or unknown user; no upstream connection was made
 * - reauth: the account needs an interactive sign-in (IMAP NO [AUTHENTICATIONFAILED], POP -ERR [AUTH], SMTP 535 5.7.8)
 * - transient: try later (IMAP NO [UNAVAILABLE], POP -ERR [SYS/TEMP], SMTP 454 4.7.0)
 * - config: mailkey or the account is misconfigured (IMAP NO [CONTACTADMIN], POP -ERR [SYS/PERM], SMTP 454 4.7.0)
 */
export type LoginOutcome = 'ok' | 'bad-credentials' | 'reauth' | 'transient' | 'config'

export interface LoginResult {
  actions: ClientAction[]
  /** true on 'ok': the pre-auth phase is over and the proxy splices from now on */
  done: boolean
  /** client bytes received after the login command (pipelining), to forward upstream first */
  leftover?: Buffer
}

export interface SessionLimits {
  /** longest command line accepted from the client before login (bytes, CRLF included) */
  maxLineBytes: number
  /** largest IMAP literal accepted before login (a password or SASL blob) */
  maxLiteralBytes: number
  /** one IMAP command before login, its lines and literals together (a LOGIN with two literals) */
  maxCommandBytes: number
  /** commands accepted before login, so a client cannot keep a connection busy forever */
  maxCommands: number
  /** failed logins on one connection before it is closed */
  maxFailedLogins: number
}

export const DEFAULT_LIMITS: SessionLimits = {
  maxLineBytes: 8192,
  maxLiteralBytes: 8192,
  maxCommandBytes: 16384,
  maxCommands: 50,
  // smtplib tries PLAIN, then LOGIN, after one wrong password: two failures per attempt
  maxFailedLogins: 5,
}

export interface SessionOptions {
  /** the client connection is already TLS */
  secure: boolean
  /** STARTTLS/STLS can be offered to the client (the proxy has a certificate) */
  starttlsAvailable: boolean
  /**
   * credentials are refused until TLS: set for every listener not bound to loopback unless it is
   * implicit TLS (a STARTTLS listener included), whoever connects (proxy/auth-policy.ts)
   */
  requireTls: boolean
  /**
   * XOAUTH2/OAUTHBEARER from clients with their own token are offered and passed through. Off: not
   * advertised, and refused like any unknown mechanism (proxy/auth-policy.ts, docs/adr/0008)
   */
  oauthPassthrough: boolean
  /** host name used in greetings */
  hostname: string
  limits?: Partial<SessionLimits>
}

export interface PreAuthSession {
  /** what to send when the client connects (the greeting) */
  start(): ClientAction[]
  /** feed bytes from the client; returns the actions in order */
  feed(data: Buffer): ClientAction[]
  /** the verdict on the pending login action */
  loginResult(outcome: LoginOutcome, info?: { text?: string }): LoginResult
}

/** The limits for a session: the defaults, overridden by positive whole numbers only. */
export function resolveLimits(partial: Partial<SessionLimits> | undefined): SessionLimits {
  const out: SessionLimits = { ...DEFAULT_LIMITS }
  for (const key of Object.keys(out) as (keyof SessionLimits)[]) {
    const v = partial?.[key]
    if (v === undefined) continue
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`session limit "${key}" must be a positive integer`)
    out[key] = v
  }
  return out
}

/**
 * The proxy's own text for a reply line: control characters (CR/LF above all: no injected reply
 * lines) folded to spaces, at most 200 characters, the fallback when nothing is left.
 */
export function replyText(text: string | undefined, fallback: string): string {
  if (text === undefined) return fallback
  const clean = text
    .replace(/[\x00-\x1f\x7f]+/g, ' ')
    .trim()
    .slice(0, 200)
    .trim()
  return clean.length > 0 ? clean : fallback
}
