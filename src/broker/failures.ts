/**
 * What a failed refresh leaves behind and how it is told: the record's lastError is written by
 * the process that refreshed and rebuilt into the same error by every process that waited for it.
 *
 * Owns: lastError <-> MailkeyError, and the errors the broker makes itself (unknown account, lost
 * answer, a Retry-After too long to wait). Must not: do I/O.
 */
import {
  ConfigError,
  ERR,
  InterruptedError,
  MailkeyError,
  ProtocolError,
  ReauthRequiredError,
  StoreError,
  TransientError,
  type ErrorCode,
} from '../errors.js'
import { quoted, shArg } from '../core/address.js'
import { waitText } from '../core/wait.js'
import { requestNeverSent } from '../core/net.js'
import type { AccountRecord, LastError } from '../domain/account.js'

export function unknownAccount(account: string): ConfigError {
  return new ConfigError(ERR.ACCOUNT_UNKNOWN, `no account ${quoted(account)} is set up`, {
    account,
    hint: `Run "mailkey add ${shArg(account)}" to sign in, or "mailkey list" to see the accounts there are.`,
  })
}

const REAUTH_CODES = new Set<string>([
  ERR.REAUTH_REQUIRED,
  ERR.NO_REFRESH_TOKEN,
  ERR.CLIENT_REJECTED,
  ERR.CONSENT_REQUIRED,
  ERR.FLOW_BLOCKED,
  ERR.SIGNIN_DECLINED,
  ERR.SIGNIN_EXPIRED,
  ERR.SIGNIN_TIMEOUT,
])

/** Rebuild the error another process recorded, so every waiter reports the same thing. */
export function errorFromLast(rec: AccountRecord): MailkeyError {
  const l = rec.lastError
  const account = rec.settings.email
  const opts = {
    account,
    ...(l?.oauthError ? { oauthError: l.oauthError } : {}),
    ...(l?.providerCodes ? { providerCodes: l.providerCodes } : {}),
    ...(l?.retryAfterSec !== undefined ? { retryAfterSec: l.retryAfterSec } : {}),
  }
  if (!l) {
    return new ReauthRequiredError(ERR.REAUTH_REQUIRED, `the grant for "${account}" needs a new sign-in`, opts)
  }
  const code = l.code as ErrorCode
  if (rec.state === 'reauth' || REAUTH_CODES.has(code))
    return new ReauthRequiredError(REAUTH_CODES.has(code) ? code : ERR.REAUTH_REQUIRED, l.message, opts)
  if (l.transient) return new TransientError(code, l.message, opts)
  if (code.startsWith('ERR_MAILKEY_STORE')) return new StoreError(code, l.message, opts)
  if (code === ERR.OAUTH_CONFIG || code === ERR.CONFIG_INVALID || code === ERR.INSECURE_ENDPOINT)
    return new ConfigError(code, l.message, opts)
  return new ProtocolError(code, l.message, opts)
}

/** The lastError to record for `err` at `at`. */
export function lastErrorOf(err: MailkeyError, at: number): LastError {
  const last: LastError = { code: err.code, message: err.message, transient: err.transient, at }
  if (noAnswer(err)) last.answerMaybeLost = true
  if (err.retryAfterSec !== undefined) last.retryAfterSec = err.retryAfterSec
  if (err.oauthError) last.oauthError = err.oauthError
  if (err.providerCodes.length) last.providerCodes = err.providerCodes
  return last
}

/** Anything thrown, as a MailkeyError (a bug or a foreign error becomes a protocol error). */
export function asMailkeyError(e: unknown, account: string): MailkeyError {
  return e instanceof MailkeyError
    ? e
    : new ProtocolError(ERR.OAUTH_PROTOCOL, String((e as Error)?.message ?? e), { account, cause: e })
}

/**
 * A connection that failed with no HTTP answer after the request may have been written: the server
 * may have acted on it (rotated the refresh token). A connection refused, a failed lookup or a
 * refused TLS handshake never carried the request, so no answer can have been lost.
 */
export function noAnswer(err: MailkeyError): boolean {
  return err.transient && err.status === undefined && !requestNeverSent(err.cause)
}

/**
 * invalid_grant right after a refresh whose connection failed with no answer: the server may have
 * rotated the refresh token and its answer, with the new one, never arrived. A server that rotates
 * without a grace period (RFC 9700 §4.14.2 allows it) then refuses the old one, and only a new
 * sign-in helps; say so instead of a bare "refused".
 */
export function lostAnswer(err: MailkeyError, email: string, cutOffHost?: string): ReauthRequiredError {
  const earlier = cutOffHost
    ? `An earlier refresh for "${email}" by ${cutOffHost} was cut off (killed, paused or disconnected) before its answer was stored`
    : `An earlier refresh for "${email}" lost its connection before the answer arrived`
  return new ReauthRequiredError(
    err.code,
    `${err.message}. ${earlier}; this server had most likely already replaced the refresh token (rotation without a grace period), so the new one never reached mailkey`,
    {
      account: email,
      ...(err.oauthError ? { oauthError: err.oauthError } : {}),
      providerCodes: err.providerCodes,
      ...(err.status !== undefined ? { status: err.status } : {}),
      hint: `Run "mailkey add ${shArg(email)}" to sign in again. A server that rotates refresh tokens should allow a short reuse window for lost answers (Auth0 "reuse interval", Okta "grace period").`,
      cause: err,
    },
  )
}

/** RFC 9110 §10.2.3: a Retry-After longer than mailkey waits by itself: say how long. */
export function retryAfterTooLong(err: MailkeyError, retryAfterSec: number, account: string): TransientError {
  return new TransientError(
    err.code,
    `${err.message}; the server asks to wait ${waitText(retryAfterSec)} (Retry-After: ${retryAfterSec})`,
    {
      account,
      retryAfterSec,
      ...(err.oauthError ? { oauthError: err.oauthError } : {}),
      providerCodes: err.providerCodes,
      ...(err.status !== undefined ? { status: err.status } : {}),
      cause: err,
    },
  )
}

/** How a refresh this process led ended, for an observer (the token service's metrics). */
export type RefreshOutcome = 'ok' | 'needs_sign_in' | 'transient' | 'failed'

export function outcomeOf(e: unknown): RefreshOutcome {
  if (!(e instanceof MailkeyError)) return 'failed'
  return e.reauthRequired ? 'needs_sign_in' : e.transient ? 'transient' : 'failed'
}

/**
 * A refresh this process led failed: run the user's hook for it (only the leader does, so fifty
 * callers waiting on one refresh, on one host or many, make one notification).
 */
export async function hookForFailure(
  id: string,
  e: unknown,
  fire: (event: 'reauth' | 'refresh_error', vars: Record<string, string | number | undefined>) => Promise<void>,
): Promise<void> {
  if (!(e instanceof MailkeyError) || e instanceof InterruptedError) return
  const vars = { account: id, message: e.message, error_code: e.code, transient: e.transient ? 1 : 0 }
  if (e.reauthRequired) await fire('reauth', { ...vars, command: `mailkey add ${shArg(id)}` })
  else await fire('refresh_error', vars)
}
