/**
 * SASL PLAIN (RFC 4616), server side: decode what a *mail client* sends the proxy.
 *
 *   message = [authzid] UTF8NUL authcid UTF8NUL passwd      (RFC 4616 §2)
 *   authcid = 1*SAFE; authzid = 1*SAFE; passwd = 1*SAFE; SAFE = any UTF-8 character except NUL
 *
 * Strict: canonical padded base64 (RFC 4648 §4), valid UTF-8, exactly two NULs, non-empty authcid
 * and password. Stricter than RFC 4616 in one place: the identities (authzid, authcid) may not hold
 * control characters, because they are looked up and logged; the password may hold anything but NUL.
 *
 * Owns: decoding PLAIN. Must not: do I/O, log, decide whether an authzid is acceptable (the session
 * does), or quote any part of the input in an error (it holds the password).
 */
import { Secret } from '../core/secret.js'
import { SaslDecodeError, decodeSaslBase64, hasControlChar } from './xoauth2.js'

export interface PlainCredentials {
  /** the authorization identity; undefined when the client sent none (the usual case) */
  authzid?: string
  /** the authentication identity: the user name */
  authcid: string
  password: Secret
}

/**
 * Decode a PLAIN client response (base64, as sent after `AUTH PLAIN` or a `+ `/`334 ` prompt).
 * Throws SaslDecodeError with a fixed message on anything RFC 4616 §2 does not allow.
 *
 * @see [RFC 4616 §2 - PLAIN SASL Mechanism](https://www.rfc-editor.org/rfc/rfc4616.html#section-2)
 */
export function decodePlain(b64: string): PlainCredentials {
  const text = decodeSaslBase64(b64, 'PLAIN response')
  // RFC 4616 §2: exactly two UTF8NUL separators; SAFE excludes NUL, so a third is malformed.
  const parts = text.split('\x00')
  if (parts.length !== 3) throw new SaslDecodeError('PLAIN response must be "authzid\\0authcid\\0passwd"')
  const [authzid = '', authcid = '', passwd = ''] = parts
  // RFC 4616 §2: authcid = 1*SAFE, passwd = 1*SAFE.
  if (authcid.length === 0) throw new SaslDecodeError('PLAIN authcid is empty')
  if (passwd.length === 0) throw new SaslDecodeError('PLAIN password is empty')
  if (hasControlChar(authcid)) throw new SaslDecodeError('PLAIN authcid contains a control character')
  if (hasControlChar(authzid)) throw new SaslDecodeError('PLAIN authzid contains a control character')
  const out: PlainCredentials = { authcid, password: new Secret(passwd) }
  // RFC 4616 §2: the authzid is optional; an empty one means "derive it from the credentials".
  if (authzid.length > 0) out.authzid = authzid
  return out
}
