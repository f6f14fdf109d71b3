/**
 * Address and connection facts shared by the OAuth layer, the broker and the config parser.
 *
 * Owns: what counts as loopback, and which connection failures happen before a request is
 * written. Must not: import anything from mailkey.
 */

/** 127.0.0.0/8, ::1 and localhost: where plain http is tolerated (test servers only). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h)
}

/** Why a URL is unacceptable as an OAuth endpoint, or undefined when it is fine. */
export function endpointProblem(url: string): string | undefined {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return 'is not a valid URL'
  }
  if (u.protocol === 'https:') return undefined
  if (u.protocol === 'http:' && isLoopbackHost(u.hostname)) return undefined
  return 'must use https (plain http is accepted only for 127.0.0.1, ::1 and localhost)'
}

/**
 * Failures that end a connection before any byte of the request is written, so the server cannot
 * have acted on it: refused, no such name, no route, a connect timeout, no descriptor for a socket,
 * a TLS handshake refused (certificate, protocol version). A reset or a timeout after connecting
 * is not one of them: the request may have arrived.
 */
const NEVER_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_NONAME',
  'EAI_FAIL',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'EMFILE',
  'ENFILE',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
  'ERR_SSL_UNSUPPORTED_PROTOCOL',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
])

/** Whether `e`, or one of its causes, is a failure from before the request was written. */
export function requestNeverSent(e: unknown): boolean {
  let cur: unknown = e
  for (let i = 0; i < 8 && cur; i++) {
    const code = (cur as { code?: unknown }).code
    if (typeof code === 'string' && NEVER_SENT.has(code)) return true
    cur = (cur as { cause?: unknown }).cause
  }
  return false
}
