/**
 * SASL entry point: re-exports the XOAUTH2 and OAUTHBEARER codecs and picks one by mechanism name.
 *
 * Owns: the mechanism switch. Must not: choose a mechanism for a server (the caller knows which one
 * the server advertised), do I/O, or log.
 */
import type { Secret } from '../core/secret.js'
import { encodeOauthbearer } from './oauthbearer.js'
import { encodeXoauth2 } from './xoauth2.js'

export { SaslDecodeError, decodeXoauth2, decodeXoauth2ErrorChallenge, encodeXoauth2 } from './xoauth2.js'
export {
  decodeOauthbearer,
  decodeOauthbearerErrorChallenge,
  encodeOauthbearer,
  escapeSaslname,
  unescapeSaslname,
} from './oauthbearer.js'
export type { OauthbearerArgs, OauthbearerErrorChallenge, OauthbearerResponse } from './oauthbearer.js'

export const SASL_MECHANISMS = ['XOAUTH2', 'OAUTHBEARER'] as const
export type SaslMechanism = (typeof SASL_MECHANISMS)[number]

export interface SaslArgs {
  user: string
  token: Secret
  host?: string
  port?: number
}

/** The base64 initial client response for `mech`. XOAUTH2 has no host/port fields; they are dropped. */
export function encodeSasl(mech: SaslMechanism, args: SaslArgs): Secret {
  switch (mech) {
    case 'XOAUTH2':
      return encodeXoauth2(args.user, args.token)
    case 'OAUTHBEARER': {
      const { user, token, host, port } = args
      return encodeOauthbearer({
        user,
        token,
        ...(host !== undefined ? { host } : {}),
        ...(port !== undefined ? { port } : {}),
      })
    }
    default:
      // Reached only from untyped callers (config files, CLI flags).
      throw new TypeError(`unknown SASL mechanism: ${String(mech as unknown)}`)
  }
}

/**
 * What the client sends back after an error challenge, already base64 (an empty string is an empty
 * line). OAUTHBEARER: a single %x01 (RFC 7628 §3.2.3). XOAUTH2: an empty response (Google's
 * xoauth2-protocol page); the server then sends its final failure.
 */
export function saslErrorAcknowledgement(mech: SaslMechanism): string {
  return mech === 'OAUTHBEARER' ? 'AQ==' : ''
}
