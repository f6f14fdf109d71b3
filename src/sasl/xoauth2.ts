/**
 * SASL XOAUTH2: the initial client response Gmail and Exchange Online accept, and the error challenge
 * a server sends when it refuses the token.
 *
 * XOAUTH2 is not an RFC. The format is Google's (developers.google.com/gmail/imap/xoauth2-protocol)
 * and Microsoft documents the same bytes for IMAP/POP/SMTP ("Authenticate an IMAP, POP or SMTP
 * connection using OAuth", learn.microsoft.com):
 *
 *   base64("user=" user "\x01auth=Bearer " token "\x01\x01")
 *
 * Also owns SaslDecodeError and the helpers oauthbearer.ts shares (strict base64, token checks, JSON
 * challenge parsing); index.ts does not re-export those helpers.
 *
 * Owns: encoding/decoding these strings. Must not: do I/O, log, or put a token (or any decoded
 * response, which contains the token) into an error message.
 */
import { Secret } from '../core/secret.js'

/** Malformed SASL input. The message is a fixed description: it never quotes the input. */
export class SaslDecodeError extends Error {
  override name = 'SaslDecodeError'
}

/** Longest server challenge we bother to parse; a real one is a few hundred bytes. */
const MAX_CHALLENGE_CHARS = 8192

// RFC 4648 §4, with padding: the alphabet SASL profiles use (RFC 4422 §4, IMAP RFC 9051 §6.2.2).
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

// C0 controls and DEL: none of them belong in a user name or a token, and \x01 is the separator.
const CONTROL = /[\x00-\x1f\x7f]/

// RFC 6750 §2.1 b64token is a subset of this; accept any visible ASCII so that whatever a provider
// issues round-trips, but never a space or control character, which would break the framing.
const TOKEN = /^[\x21-\x7e]+$/

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Strict base64 to UTF-8. Rejects whitespace, a missing or wrong padding, non-zero padding bits and
 * invalid UTF-8. `what` names the input in the error ("XOAUTH2 response"); it must not be data.
 */
export function decodeSaslBase64(b64: string, what: string): string {
  if (typeof b64 !== 'string' || !BASE64.test(b64)) {
    throw new SaslDecodeError(`${what} is not valid base64`)
  }
  const bytes = Buffer.from(b64, 'base64')
  // Non-canonical encodings (stray bits in the last character) decode, but are not what we produce.
  if (bytes.toString('base64') !== b64) throw new SaslDecodeError(`${what} is not canonical base64`)
  try {
    return utf8.decode(bytes)
  } catch {
    throw new SaslDecodeError(`${what} is not valid UTF-8`)
  }
}

export function encodeSaslBase64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64')
}

/** The token's text, checked for what would break a SASL frame. The message never quotes it. */
export function bearerTokenText(token: Secret): string {
  if (!(token instanceof Secret)) throw new TypeError('token must be a Secret')
  const value = token.reveal()
  if (!TOKEN.test(value)) {
    throw new TypeError('access token is empty or contains a space or control character')
  }
  return value
}

export function isBearerTokenText(value: string): boolean {
  return TOKEN.test(value)
}

export function hasControlChar(value: string): boolean {
  return CONTROL.test(value)
}

/** base64(`user=<user>\x01auth=Bearer <token>\x01\x01`), as a Secret because it carries the token. */
export function encodeXoauth2(user: string, token: Secret): Secret {
  if (typeof user !== 'string' || user.length === 0) throw new TypeError('XOAUTH2 user must not be empty')
  // \x01 ends the user field; other controls have no business in a mailbox name.
  if (hasControlChar(user)) throw new TypeError('XOAUTH2 user contains a control character')
  const value = bearerTokenText(token)
  return new Secret(encodeSaslBase64(`user=${user}\x01auth=Bearer ${value}\x01\x01`))
}

/** Parse an XOAUTH2 initial response. Throws SaslDecodeError on anything but the exact shape. */
export function decodeXoauth2(b64: string): { user: string; token: Secret } {
  const text = decodeSaslBase64(b64, 'XOAUTH2 response')
  // Google's grammar: exactly two fields, each ended by \x01, then a final \x01.
  const parts = text.split('\x01')
  if (parts.length !== 4 || parts[2] !== '' || parts[3] !== '') {
    throw new SaslDecodeError('XOAUTH2 response must be "user=...\\x01auth=Bearer ...\\x01\\x01"')
  }
  const userField = parts[0] ?? ''
  const authField = parts[1] ?? ''
  if (!userField.startsWith('user=')) throw new SaslDecodeError('XOAUTH2 response does not start with user=')
  const user = userField.slice('user='.length)
  if (user.length === 0) throw new SaslDecodeError('XOAUTH2 user is empty')
  if (hasControlChar(user)) throw new SaslDecodeError('XOAUTH2 user contains a control character')
  // The scheme name is case-insensitive (RFC 9110 §11.1); Google's text has exactly one space.
  const auth = /^auth=bearer (.*)$/is.exec(authField)
  if (!auth) throw new SaslDecodeError('XOAUTH2 response has no auth=Bearer field')
  const token = auth[1] ?? ''
  if (!TOKEN.test(token)) {
    throw new SaslDecodeError('XOAUTH2 bearer token is empty or contains a space or control character')
  }
  return { user, token: new Secret(token) }
}

/**
 * Decode a parsed JSON challenge into the string fields we know. Shared with oauthbearer.ts.
 * Returns undefined when the challenge is not base64 JSON of an object.
 */
export function decodeJsonChallenge(b64: string): Record<string, unknown> | undefined {
  if (typeof b64 !== 'string' || b64.length === 0 || b64.length > MAX_CHALLENGE_CHARS) return undefined
  let text: string
  try {
    text = decodeSaslBase64(b64, 'challenge')
  } catch {
    return undefined
  }
  let parsed: unknown
  try {
    // Google's documented example ends in "\n" after the object; JSON.parse allows that.
    parsed = JSON.parse(text)
  } catch {
    return undefined
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined
  return parsed as Record<string, unknown>
}

export function stringField(obj: Record<string, unknown>, key: string): string | undefined {
  const v = obj[key]
  if (typeof v === 'string') return v
  if (typeof v === 'number' && Number.isFinite(v)) return String(v)
  return undefined
}

/**
 * The base64 JSON a server sends (IMAP `+ ...`, SMTP `334 ...`) when it refuses an XOAUTH2 token,
 * e.g. Google's `{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`.
 * The client must answer it with an empty response before the server sends its final failure.
 * Returns undefined when the challenge is not such a JSON object.
 */
export function decodeXoauth2ErrorChallenge(
  b64: string,
): { status?: string; schemes?: string; scope?: string } | undefined {
  const obj = decodeJsonChallenge(b64)
  if (!obj) return undefined
  const out: { status?: string; schemes?: string; scope?: string } = {}
  const status = stringField(obj, 'status')
  const schemes = stringField(obj, 'schemes')
  const scope = stringField(obj, 'scope')
  if (status !== undefined) out.status = status
  if (schemes !== undefined) out.schemes = schemes
  if (scope !== undefined) out.scope = scope
  return out
}
