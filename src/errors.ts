/**
 * The one error hierarchy of mailkey.
 *
 * The subclass says how to react (sign in again, try later, fix the config...), the `code` says
 * what happened. Exit codes follow sysexits(3), which the mail tools around us (msmtp, sendmail)
 * already use: 75 means "try again later" and 77 means "you must sign in again".
 *
 * Owns: classes, codes, exit-code mapping. Must not: import anything from mailkey, print, exit.
 */

export const EXIT = {
  OK: 0,
  GENERIC: 1,
  USAGE: 64,
  DATAERR: 65,
  /** sysexits EX_UNAVAILABLE: the service refused the message (sendmail-style `mailkey send`) */
  UNAVAILABLE: 69,
  SOFTWARE: 70,
  IOERR: 74,
  TEMPFAIL: 75,
  PROTOCOL: 76,
  NOPERM: 77,
  CONFIG: 78,
  INTERRUPTED: 130,
} as const

export const ERR = {
  USAGE: 'ERR_MAILKEY_USAGE',
  CONFIG_INVALID: 'ERR_MAILKEY_CONFIG_INVALID',
  ACCOUNT_UNKNOWN: 'ERR_MAILKEY_ACCOUNT_UNKNOWN',
  ACCOUNT_EXISTS: 'ERR_MAILKEY_ACCOUNT_EXISTS',
  PROVIDER_UNKNOWN: 'ERR_MAILKEY_PROVIDER_UNKNOWN',
  PROVIDER_FLOW_UNSUPPORTED: 'ERR_MAILKEY_PROVIDER_FLOW_UNSUPPORTED',
  INSECURE_ENDPOINT: 'ERR_MAILKEY_CONFIG_INSECURE_ENDPOINT',
  REAUTH_REQUIRED: 'ERR_MAILKEY_OAUTH_REAUTH_REQUIRED',
  NO_REFRESH_TOKEN: 'ERR_MAILKEY_OAUTH_NO_REFRESH_TOKEN',
  CLIENT_REJECTED: 'ERR_MAILKEY_OAUTH_CLIENT_REJECTED',
  CONSENT_REQUIRED: 'ERR_MAILKEY_OAUTH_CONSENT_REQUIRED',
  SIGNIN_DECLINED: 'ERR_MAILKEY_OAUTH_SIGNIN_DECLINED',
  SIGNIN_EXPIRED: 'ERR_MAILKEY_OAUTH_SIGNIN_EXPIRED',
  SIGNIN_TIMEOUT: 'ERR_MAILKEY_OAUTH_SIGNIN_TIMEOUT',
  FLOW_BLOCKED: 'ERR_MAILKEY_OAUTH_FLOW_BLOCKED',
  OAUTH_CONFIG: 'ERR_MAILKEY_OAUTH_CONFIG',
  OAUTH_TRANSIENT: 'ERR_MAILKEY_OAUTH_TRANSIENT',
  OAUTH_PROTOCOL: 'ERR_MAILKEY_OAUTH_PROTOCOL',
  STATE_MISMATCH: 'ERR_MAILKEY_OAUTH_STATE_MISMATCH',
  IDENTITY_MISMATCH: 'ERR_MAILKEY_OAUTH_IDENTITY_MISMATCH',
  STORE_PERMISSIONS: 'ERR_MAILKEY_STORE_PERMISSIONS',
  STORE_CORRUPT: 'ERR_MAILKEY_STORE_CORRUPT',
  STORE_LOCK_TIMEOUT: 'ERR_MAILKEY_STORE_LOCK_TIMEOUT',
  STORE_IO: 'ERR_MAILKEY_STORE_IO',
  STORE_LOCKED: 'ERR_MAILKEY_STORE_LOCKED',
  STORE_WRONG_PASSPHRASE: 'ERR_MAILKEY_STORE_WRONG_PASSPHRASE',
  STORE_KEY_UNAVAILABLE: 'ERR_MAILKEY_STORE_KEY_UNAVAILABLE',
  /** a shared store (PostgreSQL, Redis) cannot be reached or did not answer in time: try again later */
  STORE_UNAVAILABLE: 'ERR_MAILKEY_STORE_UNAVAILABLE',
  /** a shared store has no mailkey schema, or an older one: `mailkey store init` */
  STORE_SCHEMA: 'ERR_MAILKEY_STORE_SCHEMA',
  /** another host took this host's lease on an account; its write was refused (handled inside) */
  STORE_FENCED: 'ERR_MAILKEY_STORE_FENCED',
  /** the process or the system ran out of something (file descriptors, memory): try again later */
  RESOURCES_EXHAUSTED: 'ERR_MAILKEY_RESOURCES_EXHAUSTED',
  /** the grant has no consent for Microsoft Graph (Mail.Send): `mailkey add --graph` */
  GRAPH_NOT_GRANTED: 'ERR_MAILKEY_GRAPH_NOT_GRANTED',
  /** Microsoft Graph refused or failed a submission (issue 16) */
  GRAPH_SEND: 'ERR_MAILKEY_GRAPH_SEND',
  INTERNAL: 'ERR_MAILKEY_INTERNAL',
  INTERRUPTED: 'ERR_MAILKEY_INTERRUPTED',
} as const

export type ErrorCode = (typeof ERR)[keyof typeof ERR]

export interface MailkeyErrorOptions {
  /** the account the error is about, when there is one */
  account?: string
  /** a full sentence naming the exact next command; see cli/hints.ts for defaults */
  hint?: string
  cause?: unknown
  /** OAuth `error` value from the server (RFC 6749 §5.2), kept as data */
  oauthError?: string
  /** AADSTS numbers and the like */
  providerCodes?: string[]
  /** HTTP status of the response the error came from */
  status?: number
  /** seconds, from a Retry-After header (RFC 9110 §10.2.3) */
  retryAfterSec?: number
}

export class MailkeyError extends Error {
  readonly code: ErrorCode
  readonly account: string | undefined
  hint: string | undefined
  readonly oauthError: string | undefined
  readonly providerCodes: string[]
  readonly status: number | undefined
  readonly retryAfterSec: number | undefined
  readonly exitCode: number = EXIT.GENERIC

  constructor(code: ErrorCode, message: string, options: MailkeyErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.account = options.account
    this.hint = options.hint
    this.oauthError = options.oauthError
    this.providerCodes = options.providerCodes ?? []
    this.status = options.status
    this.retryAfterSec = options.retryAfterSec
  }

  /** true when trying again later, unchanged, may succeed */
  get transient(): boolean {
    return false
  }

  /** true when the user must run an interactive sign-in before this account works again */
  get reauthRequired(): boolean {
    return false
  }
}

/** Bad flags or arguments. */
export class UsageError extends MailkeyError {
  override readonly exitCode: number = EXIT.USAGE
  constructor(message: string, options: MailkeyErrorOptions = {}) {
    super(ERR.USAGE, message, options)
  }
}

/** Broken or missing configuration: a config file, an account setting, a provider definition. */
export class ConfigError extends MailkeyError {
  override readonly exitCode: number = EXIT.CONFIG
  readonly file: string | undefined
  readonly line: number | undefined
  readonly column: number | undefined
  constructor(
    code: ErrorCode,
    message: string,
    options: MailkeyErrorOptions & { file?: string; line?: number; column?: number } = {},
  ) {
    super(code, message, options)
    this.file = options.file
    this.line = options.line
    this.column = options.column
  }
}

/** The grant is gone or unusable: only an interactive sign-in helps (the record is kept). */
export class ReauthRequiredError extends MailkeyError {
  override readonly exitCode: number = EXIT.NOPERM
  override get reauthRequired(): boolean {
    return true
  }
}

/**
 * A sign-in ended with a grant for another user than the account (its id_token names
 * `signedInAs`): nothing was stored. Someone else may have completed the sign-in (login CSRF),
 * or the account signs in under another name (an alias), which the user must say explicitly.
 */
export class IdentityMismatchError extends ReauthRequiredError {
  readonly signedInAs: string
  constructor(message: string, signedInAs: string, options: MailkeyErrorOptions = {}) {
    super(ERR.IDENTITY_MISMATCH, message, options)
    this.signedInAs = signedInAs
  }
}

/** An interactive flow name, as in providers/types.ts (errors.ts imports nothing). */
type SignInFlow = 'device' | 'browser' | 'paste'

/**
 * A browser or paste sign-in that nobody finished in time. When mailkey waited on a loopback
 * listener, the provider may have refused the redirect in the browser (Microsoft's AADSTS50011),
 * where mailkey never sees it: the CLI then names the other ways to sign in (cli/hints.ts).
 */
export class SignInTimeoutError extends ReauthRequiredError {
  /** the loopback redirect the listener waited on; undefined when only a pasted address could end it */
  readonly redirectUri: string | undefined
  /** the flow that timed out, and the others the account's provider allows (set by the sign-in) */
  flow: SignInFlow | undefined
  otherFlows: SignInFlow[] = []
  constructor(message: string, redirectUri: string | undefined, options: MailkeyErrorOptions = {}) {
    super(ERR.SIGNIN_TIMEOUT, message, options)
    this.redirectUri = redirectUri
    this.flow = undefined
  }
}

/** Network trouble, timeouts, HTTP 408/429/5xx: the grant is kept, try again later. */
export class TransientError extends MailkeyError {
  override readonly exitCode: number = EXIT.TEMPFAIL
  override get transient(): boolean {
    return true
  }
}

/** A peer broke the protocol: an OAuth response we cannot use, a state mismatch. */
export class ProtocolError extends MailkeyError {
  override readonly exitCode: number = EXIT.PROTOCOL
}

/**
 * The token store cannot be used: permissions, corruption, lock timeouts, I/O. Running out of file
 * descriptors or memory while reading it (ERR.RESOURCES_EXHAUSTED) is transient: exit 75, not 74.
 */
export class StoreError extends MailkeyError {
  override readonly exitCode: number
  constructor(code: ErrorCode, message: string, options: MailkeyErrorOptions = {}) {
    super(code, message, options)
    this.exitCode =
      code === ERR.RESOURCES_EXHAUSTED || code === ERR.STORE_UNAVAILABLE
        ? EXIT.TEMPFAIL
        : code === ERR.STORE_SCHEMA
          ? EXIT.CONFIG
          : EXIT.IOERR
  }
  /** STORE_FENCED is not: the refresh it ends must not be retried with the same token (broker/fenced-flight.ts) */
  override get transient(): boolean {
    return (
      this.code === ERR.STORE_LOCK_TIMEOUT ||
      this.code === ERR.RESOURCES_EXHAUSTED ||
      this.code === ERR.STORE_UNAVAILABLE
    )
  }
}

/**
 * The store is encrypted and its key is not at hand: no agent, no passphrase given (or a wrong
 * one), or the OS keyring refused. The user has to act (unlock), like EX_NOPERM says.
 */
export class StoreLockedError extends MailkeyError {
  override readonly exitCode: number = EXIT.NOPERM
  constructor(code: ErrorCode, message: string, options: MailkeyErrorOptions = {}) {
    super(code, message, options)
  }
}

/** "Cannot happen." */
export class InternalError extends MailkeyError {
  override readonly exitCode: number = EXIT.SOFTWARE
  constructor(message: string, options: MailkeyErrorOptions = {}) {
    super(ERR.INTERNAL, message, options)
  }
}

/** The user pressed ^C or the caller aborted. */
export class InterruptedError extends MailkeyError {
  override readonly exitCode: number = EXIT.INTERRUPTED
  constructor(message = 'interrupted', options: MailkeyErrorOptions = {}) {
    super(ERR.INTERRUPTED, message, options)
  }
}

/**
 * errno codes that say the process or the machine ran short of something, not that anything is
 * wrong with the account, the file or the server: the same call may work a moment later.
 */
const SHORTAGE_TEXT: Record<string, string> = {
  EMFILE: 'this process ran out of file descriptors (EMFILE)',
  ENFILE: 'the system ran out of file descriptors (ENFILE)',
  ENOMEM: 'out of memory (ENOMEM)',
  EAGAIN: 'a resource was temporarily unavailable (EAGAIN)',
  ENOBUFS: 'out of network buffer space (ENOBUFS)',
  // getaddrinfo(3): EAI_AGAIN is a temporary DNS failure; EAI_MEMORY and EAI_SYSTEM are the
  // resolver running out of memory or failing in a system call (e.g. EMFILE), not a verdict on the name
  EAI_AGAIN: 'the DNS lookup failed temporarily (EAI_AGAIN)',
  EAI_MEMORY: 'the DNS lookup ran out of memory (EAI_MEMORY)',
  EAI_SYSTEM: 'the DNS lookup failed in a system call (EAI_SYSTEM)',
}

/** A shared store could not be reached or did not answer in time (STORE_UNAVAILABLE). */
export function isStoreUnavailable(e: unknown): boolean {
  return e instanceof MailkeyError && e.code === ERR.STORE_UNAVAILABLE
}

/** The shortage code of `e` or of one of its causes (EMFILE, ENFILE, ENOMEM, EAGAIN, ENOBUFS, EAI_AGAIN/MEMORY/SYSTEM). */
export function shortageCode(e: unknown): string | undefined {
  let cur: unknown = e
  for (let depth = 0; depth < 6 && typeof cur === 'object' && cur !== null; depth++) {
    const code = (cur as { code?: unknown }).code
    if (typeof code === 'string' && code in SHORTAGE_TEXT) return code
    cur = (cur as { cause?: unknown }).cause
  }
  return undefined
}

/** What ran out, in words, for a shortage code (shortageCode); the code itself otherwise. */
export function shortageText(code: string): string {
  return SHORTAGE_TEXT[code] ?? code
}

export function isMailkeyError(e: unknown): e is MailkeyError {
  return e instanceof MailkeyError
}

export function exitCodeOf(e: unknown): number {
  return e instanceof MailkeyError ? e.exitCode : EXIT.GENERIC
}

export function isTransient(e: unknown): boolean {
  return e instanceof MailkeyError && e.transient
}
