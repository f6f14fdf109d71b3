/**
 * The server side of the SASL exchanges the proxy accepts from clients, shared by the IMAP, POP3 and
 * SMTP sessions: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), and XOAUTH2 / OAUTHBEARER
 * (RFC 7628) from clients that bring their own token (passed through untouched). Each protocol only
 * wraps the steps in its own framing: IMAP `+ ` / `tag NO`, POP3 `+ ` / `-ERR`, SMTP `334 ` / `5xx`.
 *
 * Owns: which mechanisms exist, the order of their challenges, and turning a decoded response into
 * a `login` or `passthrough` action. Must not: know a protocol's reply syntax, or put any part of a
 * response (it holds a password or a token) into a step.
 */
import { Secret } from '../../core/secret.js'
import {
  LOGIN_PASSWORD_PROMPT,
  LOGIN_USERNAME_PROMPT,
  decodeLoginPassword,
  decodeLoginUsername,
} from '../../sasl/login.js'
import { decodeOauthbearer } from '../../sasl/oauthbearer.js'
import { decodePlain } from '../../sasl/plain.js'
import { decodeSaslBase64, decodeXoauth2 } from '../../sasl/xoauth2.js'
import type { ClientAction } from './session.js'

/** Mechanisms a client may use, in the order they are advertised (clients that pick the first one get PLAIN). */
export const CLIENT_SASL_MECHANISMS = ['PLAIN', 'LOGIN', 'XOAUTH2', 'OAUTHBEARER'] as const
export type ClientSaslMechanism = (typeof CLIENT_SASL_MECHANISMS)[number]

/** An exchange in progress: what the next client line answers. */
export type SaslExchange =
  { mech: 'PLAIN' } | { mech: 'LOGIN'; username?: string } | { mech: 'XOAUTH2' | 'OAUTHBEARER' }

export type SaslStep =
  /** send a continuation with this (already base64 or empty) text; the next line goes to saslContinue */
  | { kind: 'challenge'; text: string; exchange: SaslExchange }
  /** the exchange is complete: hand this `login` or `passthrough` action to the proxy */
  | { kind: 'done'; action: Extract<ClientAction, { type: 'login' | 'passthrough' }> }
  /**
   * the exchange failed before any credential was checked:
   * - cancelled: the client sent "*" (RFC 4422 §3.5; RFC 9051 §6.2.2, RFC 5034 §4, RFC 4954 §4)
   * - undecodable: not base64, or not a well-formed response for the mechanism
   * - authzid: PLAIN asked to act as someone else (RFC 4616 §2: a server that cannot must fail)
   * - no-user: an XOAUTH2/OAUTHBEARER response that names no user, so no account to pick
   */
  | { kind: 'fail'; why: SaslFailure }

/** How an exchange can fail before any credential is checked (see SaslStep 'fail'). */
export type SaslFailure = 'cancelled' | 'undecodable' | 'authzid' | 'no-user'

/** The mechanisms a listener offers: the password ones, and the OAuth pass-through ones only where allowed. */
export function offeredSaslMechanisms(oauthPassthrough: boolean): readonly ClientSaslMechanism[] {
  return oauthPassthrough
    ? CLIENT_SASL_MECHANISMS
    : CLIENT_SASL_MECHANISMS.filter((m) => m === 'PLAIN' || m === 'LOGIN')
}

/** The mechanism named by a client, or undefined when this listener does not take it. */
export function clientSaslMechanism(name: string, oauthPassthrough: boolean): ClientSaslMechanism | undefined {
  const upper = name.toUpperCase()
  return (offeredSaslMechanisms(oauthPassthrough) as readonly string[]).includes(upper)
    ? (upper as ClientSaslMechanism)
    : undefined
}

/**
 * Begin an exchange. `initialResponse` is the response on the command line (RFC 4959 SASL-IR, RFC
 * 5034 §4, RFC 4954 §4), where "=" stands for an empty response; undefined when there was none.
 */
export function saslStart(mech: ClientSaslMechanism, initialResponse: string | undefined): SaslStep {
  const exchange: SaslExchange = mech === 'LOGIN' ? { mech } : { mech }
  if (initialResponse === undefined) {
    // RFC 4422 §5: with no initial response the server sends an empty challenge; LOGIN asks for
    // the user name first.
    return { kind: 'challenge', text: mech === 'LOGIN' ? LOGIN_USERNAME_PROMPT : '', exchange }
  }
  return respond(exchange, initialResponse === '=' ? '' : initialResponse)
}

/** The client's next line in an exchange: "*" cancels; the rest is a base64 response. */
export function saslContinue(exchange: SaslExchange, line: string): SaslStep {
  if (line === '*') return { kind: 'fail', why: 'cancelled' }
  return respond(exchange, line === '=' ? '' : line)
}

function respond(exchange: SaslExchange, b64: string): SaslStep {
  try {
    switch (exchange.mech) {
      case 'PLAIN': {
        const creds = decodePlain(b64)
        if (creds.authzid !== undefined && creds.authzid !== creds.authcid) return { kind: 'fail', why: 'authzid' }
        return { kind: 'done', action: { type: 'login', username: creds.authcid, password: creds.password } }
      }
      case 'LOGIN': {
        if (exchange.username === undefined) {
          return {
            kind: 'challenge',
            text: LOGIN_PASSWORD_PROMPT,
            exchange: { mech: 'LOGIN', username: decodeLoginUsername(b64) },
          }
        }
        return {
          kind: 'done',
          action: { type: 'login', username: exchange.username, password: decodeLoginPassword(b64) },
        }
      }
      case 'XOAUTH2':
      case 'OAUTHBEARER': {
        let decoded
        try {
          decoded = exchange.mech === 'XOAUTH2' ? decodeXoauth2(b64) : decodeOauthbearer(b64)
        } catch (e) {
          // Not a well-formed bearer token, so never forwarded; but a Cyrus XOAUTH2 plugin sends the
          // account's password (here: the local one, spaces and all) in this place. Take it as what
          // it is: a password login (issue 11 item 6).
          const loose = looseBearer(exchange.mech, b64)
          if (loose) return { kind: 'done', action: { type: 'login', username: loose.user, password: loose.password } }
          throw e
        }
        if (!decoded.user) return { kind: 'fail', why: 'no-user' }
        return {
          kind: 'done',
          action: {
            type: 'passthrough',
            username: decoded.user,
            mechanism: exchange.mech,
            response: new Secret(b64),
            token: decoded.token,
          },
        }
      }
    }
  } catch {
    return { kind: 'fail', why: 'undecodable' }
  }
}

/**
 * A user and a "bearer" value that is not a token (it has spaces, say), from a response of the
 * right shape otherwise; undefined when the shape is wrong too.
 */
function looseBearer(mech: 'XOAUTH2' | 'OAUTHBEARER', b64: string): { user: string; password: Secret } | undefined {
  let text: string
  try {
    text = decodeSaslBase64(b64, `${mech} response`)
  } catch {
    return undefined
  }
  const m =
    mech === 'XOAUTH2'
      ? /^user=([^\x00-\x1f]+)\x01auth=bearer ([^\x00-\x1f\x7f]+)\x01\x01$/is.exec(text)
      : // RFC 7628 §3.1 / RFC 5801 §4: "n,a=<saslname>," then \x01-separated pairs; saslname escapes "," and "=".
        /^[ny],a=([^,\x00-\x1f]+),\x01(?:[a-z]+=[^\x01]*\x01)*?auth=bearer ([^\x00-\x1f\x7f]+)\x01(?:[a-z]+=[^\x01]*\x01)*\x01$/is.exec(
          text,
        )
  if (!m) return undefined
  const user = mech === 'XOAUTH2' ? (m[1] as string) : (m[1] as string).replace(/=2C/gi, ',').replace(/=3D/gi, '=')
  return { user, password: new Secret(m[2] as string) }
}
