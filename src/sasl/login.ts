/**
 * SASL LOGIN, server side: decode what a *mail client* sends the proxy.
 *
 * LOGIN is not an RFC (draft-murchison-sasl-login-00, and Microsoft's [MS-XLOGIN] §2.2.2). The
 * server prompts twice; the client answers each prompt with one base64 line:
 *
 *   S: "Username:" (VXNlcm5hbWU6)   C: base64(user name)
 *   S: "Password:" (UGFzc3dvcmQ6)   C: base64(password)
 *
 * A client may send the user name as an initial response (`AUTH LOGIN dXNlcg==`); the server then
 * prompts only for the password. The prompt text is not significant, but clients compare it, so we
 * send exactly these.
 *
 * Owns: the prompts and decoding the two responses. Must not: do I/O, log, or quote the input in an
 * error (the second response is a password).
 */
import { Secret } from '../core/secret.js'
import { SaslDecodeError, decodeSaslBase64, hasControlChar } from './xoauth2.js'

/** base64("Username:") */
export const LOGIN_USERNAME_PROMPT = 'VXNlcm5hbWU6'
/** base64("Password:") */
export const LOGIN_PASSWORD_PROMPT = 'UGFzc3dvcmQ6'

/**
 * The user name: canonical base64 of non-empty UTF-8 without control characters.
 * Throws SaslDecodeError with a fixed message.
 */
export function decodeLoginUsername(b64: string): string {
  const user = decodeSaslBase64(b64, 'LOGIN user name')
  if (user.length === 0) throw new SaslDecodeError('LOGIN user name is empty')
  if (hasControlChar(user)) throw new SaslDecodeError('LOGIN user name contains a control character')
  return user
}

/**
 * The password: canonical base64 of non-empty UTF-8 without NUL (as PLAIN's SAFE, RFC 4616 §2).
 * Throws SaslDecodeError with a fixed message that never includes the input.
 */
export function decodeLoginPassword(b64: string): Secret {
  const password = decodeSaslBase64(b64, 'LOGIN password')
  if (password.length === 0) throw new SaslDecodeError('LOGIN password is empty')
  if (password.includes('\x00')) throw new SaslDecodeError('LOGIN password contains NUL')
  return new Secret(password)
}
