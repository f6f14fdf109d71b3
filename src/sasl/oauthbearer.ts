/**
 * SASL OAUTHBEARER (RFC 7628): the initial client response and the server's JSON error challenge.
 *
 *   client-resp = gs2-header kvsep *kvpair kvsep          (RFC 7628 §3.1)
 *   gs2-header  = ("n" / "y") "," ["a=" saslname] ","     (RFC 5801 §4; we send "n": no channel binding)
 *   kvpair      = key "=" value kvsep;  kvsep = %x01
 *   auth        = "Bearer" 1*SP b64token                   (RFC 6750 §2.1)
 *
 * Owns: encoding/decoding these strings. Must not: do I/O, log, or put a token (or any decoded
 * response, which contains the token) into an error message.
 */
import { Secret } from '../core/secret.js'
import {
  SaslDecodeError,
  bearerTokenText,
  decodeJsonChallenge,
  decodeSaslBase64,
  encodeSaslBase64,
  hasControlChar,
  isBearerTokenText,
  stringField,
} from './xoauth2.js'

export interface OauthbearerArgs {
  user: string
  token: Secret
  host?: string
  port?: number
}

export interface OauthbearerResponse {
  user?: string
  host?: string
  port?: number
  token: Secret
}

export interface OauthbearerErrorChallenge {
  status: string
  scope?: string
  'openid-configuration'?: string
}

// RFC 7628 §3.1: host = "host" "=" 1*VCHAR
const VCHARS = /^[\x21-\x7e]+$/
// RFC 7628 §3.1: key = 1*(ALPHA)
const KEY = /^[A-Za-z]+$/
// RFC 7628 §3.1: value = *(VCHAR / SP / HTAB / CR / LF)
const VALUE = /^[\x21-\x7e \t\r\n]*$/
// RFC 7628 §3.1: port = "port" "=" 1*DIGIT
const DIGITS = /^[0-9]+$/

/** RFC 5801 §4: in a saslname, "," is sent as "=2C" and "=" as "=3D". */
export function escapeSaslname(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C')
}

/** RFC 5801 §4: undo escapeSaslname; any "=" not starting "=2C" or "=3D" makes the name invalid. */
export function unescapeSaslname(name: string): string {
  // RFC 5234 §2.3: quoted ABNF strings are case-insensitive, so "=2c" is as valid as "=2C".
  if (/=(?!2[Cc]|3[Dd])/.test(name)) throw new SaslDecodeError('authzid has an "=" that is not =2C or =3D')
  return name.replace(/=2[Cc]/g, ',').replace(/=3[Dd]/g, '=')
}

/** The OAUTHBEARER initial client response, base64-encoded, as a Secret (it carries the token). */
export function encodeOauthbearer(args: OauthbearerArgs): Secret {
  const { user, token, host, port } = args
  if (typeof user !== 'string') throw new TypeError('OAUTHBEARER user must be a string')
  // RFC 5801 §4: UTF8-char-safe excludes NUL; other controls have no place in a mailbox name either.
  if (hasControlChar(user)) throw new TypeError('OAUTHBEARER user contains a control character')
  const value = bearerTokenText(token)
  // RFC 5801 §4: the authzid is optional; when present it is 1*(saslname chars).
  let out = user.length > 0 ? `n,a=${escapeSaslname(user)},` : 'n,,'
  out += '\x01'
  if (host !== undefined) {
    if (typeof host !== 'string' || !VCHARS.test(host)) {
      throw new TypeError('OAUTHBEARER host must be non-empty visible ASCII')
    }
    out += `host=${host}\x01`
  }
  if (port !== undefined) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new TypeError('OAUTHBEARER port must be an integer from 1 to 65535')
    }
    // RFC 7628 §3.1: port = 1*DIGIT; String() of an integer has no sign, exponent or leading zero.
    out += `port=${String(port)}\x01`
  }
  out += `auth=Bearer ${value}\x01\x01`
  return new Secret(encodeSaslBase64(out))
}

/** Parse the GS2 header; returns the authzid (if any) and the rest of the response. */
function splitGs2Header(text: string): { user?: string; rest: string } {
  // RFC 5801 §4: gs2-cb-flag is "n" (client does not support channel binding) or "y" (it does but
  // thinks the server does not). "p=" asks for channel binding, which OAUTHBEARER does not offer (it
  // has no -PLUS variant), and the "F," non-standard flag applies only to GSS-API mechanisms.
  const flag = text.slice(0, 2)
  if (flag !== 'n,' && flag !== 'y,') {
    throw new SaslDecodeError('OAUTHBEARER response must start with a GS2 header "n," or "y,"')
  }
  const end = text.indexOf(',', 2)
  if (end < 0) throw new SaslDecodeError('OAUTHBEARER GS2 header is not terminated by ","')
  const authzid = text.slice(2, end)
  const rest = text.slice(end + 1)
  if (authzid.length === 0) return { rest }
  if (!authzid.startsWith('a=')) throw new SaslDecodeError('OAUTHBEARER GS2 header has an unknown field')
  const escaped = authzid.slice(2)
  // RFC 5801 §4: saslname = 1*(UTF8-char-safe / "=2C" / "=3D"), UTF8-char-safe excludes NUL.
  if (escaped.length === 0) throw new SaslDecodeError('OAUTHBEARER authzid is empty')
  if (hasControlChar(escaped)) throw new SaslDecodeError('OAUTHBEARER authzid contains a control character')
  return { user: unescapeSaslname(escaped), rest }
}

/** Parse an OAUTHBEARER initial response. Throws SaslDecodeError on anything RFC 7628 does not allow. */
export function decodeOauthbearer(b64: string): OauthbearerResponse {
  const text = decodeSaslBase64(b64, 'OAUTHBEARER response')
  // RFC 7628 §3.2.3: a lone %x01 is the client's acknowledgement of an error challenge, not a login.
  if (text === '\x01') {
    throw new SaslDecodeError('OAUTHBEARER response is an error acknowledgement, not a login')
  }
  const { user, rest } = splitGs2Header(text)
  // RFC 7628 §3.1: gs2-header kvsep *kvpair kvsep, and every kvpair ends in its own kvsep.
  if (rest.length < 2 || !rest.startsWith('\x01') || !rest.endsWith('\x01')) {
    throw new SaslDecodeError('OAUTHBEARER key/value section must be framed by \\x01')
  }
  const inner = rest.slice(1, -1)
  if (inner.length === 0) throw new SaslDecodeError('OAUTHBEARER response has no auth field')
  if (!inner.endsWith('\x01')) throw new SaslDecodeError('OAUTHBEARER response is missing its final \\x01')
  const seen = new Map<string, string>()
  for (const pair of inner.slice(0, -1).split('\x01')) {
    const eq = pair.indexOf('=')
    if (eq <= 0) throw new SaslDecodeError('OAUTHBEARER key/value pair has no key')
    const key = pair.slice(0, eq)
    const value = pair.slice(eq + 1)
    if (!KEY.test(key)) throw new SaslDecodeError('OAUTHBEARER key is not alphabetic')
    if (!VALUE.test(value)) throw new SaslDecodeError('OAUTHBEARER value contains a forbidden character')
    // RFC 5234 §2.3: "auth", "host", "port" are ABNF literals, so case-insensitive.
    const k = key.toLowerCase()
    if (seen.has(k)) throw new SaslDecodeError('OAUTHBEARER key appears twice')
    seen.set(k, value)
  }
  // RFC 7628 §3.1: auth is REQUIRED; other keys (host, port, and any we do not know) are optional.
  const auth = seen.get('auth')
  if (auth === undefined) throw new SaslDecodeError('OAUTHBEARER response has no auth field')
  // RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110 §11.1).
  const m = /^bearer +(.*)$/is.exec(auth)
  if (!m) throw new SaslDecodeError('OAUTHBEARER auth field is not a Bearer credential')
  const token = m[1] ?? ''
  if (!isBearerTokenText(token)) {
    throw new SaslDecodeError('OAUTHBEARER bearer token is empty or contains a space or control character')
  }
  const out: OauthbearerResponse = { token: new Secret(token) }
  if (user !== undefined) out.user = user
  const host = seen.get('host')
  if (host !== undefined) {
    if (!VCHARS.test(host)) throw new SaslDecodeError('OAUTHBEARER host is empty or not visible ASCII')
    out.host = host
  }
  const port = seen.get('port')
  if (port !== undefined) {
    const n = DIGITS.test(port) ? Number(port) : NaN
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      throw new SaslDecodeError('OAUTHBEARER port is not from 1 to 65535')
    }
    out.port = n
  }
  return out
}

/**
 * RFC 7628 §3.2.2: on failure the server sends base64 JSON with "status" (required), "scope" and
 * "openid-configuration" (optional). The client then sends a lone %x01 (RFC 7628 §3.2.3).
 * Returns undefined when the challenge is not such an object.
 */
export function decodeOauthbearerErrorChallenge(b64: string): OauthbearerErrorChallenge | undefined {
  const obj = decodeJsonChallenge(b64)
  if (!obj) return undefined
  const status = stringField(obj, 'status')
  // RFC 7628 §3.2.2: "status" is REQUIRED; without it this is not an OAUTHBEARER error.
  if (status === undefined) return undefined
  const out: OauthbearerErrorChallenge = { status }
  const scope = stringField(obj, 'scope')
  const config = stringField(obj, 'openid-configuration')
  if (scope !== undefined) out.scope = scope
  if (config !== undefined) out['openid-configuration'] = config
  return out
}
