/**
 * What a failed connection to an OAuth server was, in the user's terms: a TLS/protocol mismatch, a
 * certificate the machine does not trust, nothing listening, a host name that does not exist, a
 * port fetch refuses, a temporary DNS failure or this machine running short (core/resources.ts).
 * Mistakes in the settings are configuration errors (exit 78) while an account is being set up;
 * on a refresh the same settings worked before, so the failure stays transient (exit 75) and a
 * cached token may still be used, with the same words.
 *
 * Owns: recognising network failures and their text. Must not: retry, or classify anything else
 * (oauth/classify.ts does, and calls this once); the token service client (remote/) has its own.
 */
import { ConfigError, ERR, TransientError, shortageCode, shortageText, type MailkeyError } from '../errors.js'
import { descriptorShortage } from '../core/resources.js'

export interface NetContext {
  account: string
  /** host[:port] of the endpoint */
  host: string
  /** true while an account is being set up (sign-in, device, discovery): mistakes are configuration */
  settingUp: boolean
}

/** Certificate verification codes of OpenSSL/Node, by what they mean to a user. */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
])
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID'])
const WRONG_NAME = 'ERR_TLS_CERT_ALTNAME_INVALID'

/** True when `e` is a failure to connect or talk (fetch's bare TypeError, an errno or TLS code). */
export function isNetworkFailure(e: unknown): boolean {
  if (e instanceof TypeError && isArgumentError(e)) return false
  return e instanceof TypeError || failureCode(e) !== undefined
}

/** The MailkeyError for a network failure (isNetworkFailure). */
export function networkFailure(e: unknown, ctx: NetContext): MailkeyError {
  const code = failureCode(e)
  const opts = { account: ctx.account, cause: e }
  const acct = `"${ctx.account}"`
  // Say what ran out when it was this machine (EMFILE, ENOMEM, EAI_AGAIN ...); glibc's lookup
  // says ENOTFOUND when it could not open a file for lack of descriptors (core/resources.ts).
  const shortage = shortageCode(e) ?? (code === 'ENOTFOUND' ? descriptorShortage() : undefined)
  if (shortage)
    return new TransientError(
      ERR.OAUTH_TRANSIENT,
      `cannot reach ${ctx.host} for ${acct}: ${shortageText(shortage)}`,
      opts,
    )
  const setup = (message: string, hint: string): MailkeyError =>
    ctx.settingUp
      ? new ConfigError(ERR.OAUTH_CONFIG, message, { ...opts, hint })
      : new TransientError(ERR.OAUTH_TRANSIENT, message, { ...opts, hint })
  if (code !== undefined && isTlsMismatch(code)) {
    return setup(
      `the server at ${ctx.host} does not speak TLS on that port (${code}), so mailkey cannot reach it for ${acct}`,
      'Use http:// only for a plain-http test server on this machine (127.0.0.1, ::1, localhost), or the port where the server speaks https.',
    )
  }
  if (code !== undefined && isCertificateCode(code)) return certificateFailure(code, ctx, setup)
  if (code === 'ECONNREFUSED') {
    return new TransientError(
      ERR.OAUTH_TRANSIENT,
      `cannot reach ${hostPort(e, ctx.host)} for ${acct}: connection refused, nothing listens on that port (ECONNREFUSED)`,
      { ...opts, hint: 'Check the host and port in the URL; if they are right, the server is down: try again later.' },
    )
  }
  if (code === 'ENOTFOUND') {
    const name = hostnameOf(e) ?? ctx.host
    return setup(
      `the host name ${name} does not exist (DNS: ENOTFOUND), so mailkey cannot reach it for ${acct}`,
      `Check the spelling of "${name}" in the URL.`,
    )
  }
  if (code === undefined && causeMessage(e) === 'bad port') {
    // undici refuses the Fetch standard's "bad ports" (1, 7, 25, 110, 143, 587 ...) before connecting
    return new ConfigError(
      ERR.OAUTH_CONFIG,
      `fetch refuses to connect to ${ctx.host} for ${acct}: the Fetch standard blocks that port`,
      {
        ...opts,
        hint: 'Use the port the OAuth server listens on (usually 443 for https).',
      },
    )
  }
  return new TransientError(
    ERR.OAUTH_TRANSIENT,
    `cannot reach ${ctx.host} for ${acct}${code ? ` (${code})` : ''}`,
    opts,
  )
}

function certificateFailure(
  code: string,
  ctx: NetContext,
  setup: (message: string, hint: string) => MailkeyError,
): MailkeyError {
  const what = `the TLS certificate of ${ctx.host}`
  const end = `(${code}), so mailkey does not trust it for "${ctx.account}"`
  if (code === WRONG_NAME)
    return setup(
      `${what} names another host ${end}`,
      'Check the host name in the URL: it must be one the certificate names.',
    )
  if (EXPIRED.has(code)) {
    const when = code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet'
    return setup(
      `${what} ${when} ${end}`,
      "Check this machine's date and time; if they are right, the server's certificate must be renewed.",
    )
  }
  if (UNTRUSTED.has(code)) {
    return setup(
      `${what} is signed by an authority this machine does not trust ${end}`,
      'If it is your own server, give Node its CA with NODE_EXTRA_CA_CERTS=/path/to/ca.pem; otherwise check the URL (a proxy may be in the way).',
    )
  }
  return setup(`${what} is not valid ${end}`, 'Check the URL, and the certificate the server presents there.')
}

/** OpenSSL's record/handshake errors (ERR_SSL_*) and EPROTO: the peer does not speak TLS as expected. */
function isTlsMismatch(code: string): boolean {
  return code.startsWith('ERR_SSL_') || code === 'EPROTO'
}

function isCertificateCode(code: string): boolean {
  return code === WRONG_NAME || EXPIRED.has(code) || UNTRUSTED.has(code) || /^(ERR_TLS_)?CERT_|_CERT(_|$)/.test(code)
}

/** The first errno, undici or TLS/certificate code in `e` or its causes. */
export function failureCode(e: unknown): string | undefined {
  let cur: unknown = e
  for (let i = 0; i < 4 && cur; i++) {
    const code = (cur as { code?: unknown }).code
    if (typeof code === 'string') {
      if (/^E[A-Z]+/.test(code) && !(i === 0 && isArgumentError(cur))) return code
      if (code.startsWith('UND_ERR') || isCertificateCode(code)) return code
    }
    cur = (cur as { cause?: unknown }).cause
  }
  return undefined
}

/** oauth4webapi's and Node's argument errors: TypeErrors with an ERR_* code, not worth retrying. */
export function isArgumentError(e: unknown): boolean {
  if (!(e instanceof TypeError)) return false
  const code = (e as { code?: unknown }).code
  return typeof code === 'string' && code.startsWith('ERR_')
}

function causeOf(e: unknown, key: 'hostname' | 'port' | 'message'): unknown {
  let cur: unknown = e
  for (let i = 0; i < 4 && cur; i++) {
    const v = (cur as Record<string, unknown>)[key]
    if (v !== undefined && i > 0) return v
    cur = (cur as { cause?: unknown }).cause
  }
  return undefined
}

function causeMessage(e: unknown): string | undefined {
  const m = causeOf(e, 'message')
  return typeof m === 'string' ? m : undefined
}

function hostnameOf(e: unknown): string | undefined {
  const h = causeOf(e, 'hostname')
  return typeof h === 'string' && h ? h : undefined
}

/** host:port for a refused connection: the URL's host, with the port the socket used when the URL had none. */
function hostPort(e: unknown, host: string): string {
  const port = causeOf(e, 'port')
  if (typeof port !== 'number' || /:\d+$/.test(host)) return host
  return `${host}:${port}`
}
