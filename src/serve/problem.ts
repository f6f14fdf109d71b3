/**
 * Errors as RFC 9457 problem documents (`application/problem+json`), with the same kinds as the
 * CLI's exit codes, so a client of the service (remote/) can turn them back into the same
 * MailkeyError and exit the same way `mailkey token` would on the store's host:
 *
 *   needs-sign-in  409  exit 77  the grant is dead: `command` says how to sign in again
 *   unavailable    503  exit 75  try again (Retry-After); nothing is lost
 *   unknown-account 404 exit 78
 *   unauthorized   401           no key, a wrong key or a removed one (WWW-Authenticate: Bearer)
 *   not-allowed    403           the key may not use that account
 *   bad-request    400  exit 64
 *   failed         500  the error's own exit code (a configuration or protocol problem)
 *
 * Owns: the mapping. Must not: put a secret, a stack or a file path of the service in a document.
 */
import { ERR, EXIT, MailkeyError, isStoreUnavailable } from '../errors.js'
import { shArg } from '../core/address.js'

export type ProblemKind =
  | 'needs-sign-in'
  | 'unavailable'
  | 'unknown-account'
  | 'unauthorized'
  | 'not-allowed'
  | 'bad-request'
  | 'not-found'
  | 'method-not-allowed'
  | 'failed'

export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  kind: ProblemKind
  /** the MailkeyError code, when there was one */
  code?: string
  account?: string
  /** what to run to fix it (needs-sign-in: the sign-in command) */
  hint?: string
  command?: string
  /** the exit code `mailkey token` gives for the same failure */
  exit_code?: number
  retry_after?: number
  instance?: string
}

export const PROBLEM_BASE = 'urn:mailkey:problem:'

const KINDS: Record<ProblemKind, { status: number; title: string; exit?: number }> = {
  'needs-sign-in': { status: 409, title: 'The account needs a new sign-in', exit: EXIT.NOPERM },
  unavailable: { status: 503, title: 'Temporarily unavailable', exit: EXIT.TEMPFAIL },
  'unknown-account': { status: 404, title: 'No such account', exit: EXIT.CONFIG },
  unauthorized: { status: 401, title: 'A valid API key is needed', exit: EXIT.CONFIG },
  'not-allowed': { status: 403, title: 'This API key may not use that account', exit: EXIT.CONFIG },
  'bad-request': { status: 400, title: 'Bad request', exit: EXIT.USAGE },
  'not-found': { status: 404, title: 'No such endpoint' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  failed: { status: 500, title: 'The request failed' },
}

export function problem(kind: ProblemKind, detail: string, extra: Partial<Problem> = {}): Problem {
  const k = KINDS[kind]
  return {
    type: PROBLEM_BASE + kind,
    title: k.title,
    status: k.status,
    detail,
    kind,
    ...(k.exit !== undefined ? { exit_code: k.exit } : {}),
    ...extra,
  }
}

/** seconds a client should wait after a transient failure with no Retry-After of its own */
export const DEFAULT_RETRY_AFTER_SEC = 5

/** The problem an error from the broker is. Anything that is not a MailkeyError is a bare 500. */
export function problemOf(e: unknown, account?: string): Problem {
  const acct = account ? { account } : {}
  if (!(e instanceof MailkeyError)) return problem('failed', 'internal error', { ...acct, exit_code: EXIT.SOFTWARE })
  const msg = noPaths(e.message)
  const base = { ...acct, code: e.code, ...(e.hint ? { hint: noPaths(e.hint) } : {}) }
  if (e.reauthRequired) {
    const who = e.account ?? account
    return problem('needs-sign-in', msg, { ...base, ...(who ? { command: `mailkey add ${shArg(who)}` } : {}) })
  }
  if (e.transient || isStoreUnavailable(e))
    return problem('unavailable', msg, { ...base, retry_after: e.retryAfterSec ?? DEFAULT_RETRY_AFTER_SEC })
  if (e.code === ERR.ACCOUNT_UNKNOWN) return problem('unknown-account', msg, base)
  if (e.code === ERR.USAGE) return problem('bad-request', msg, base)
  return problem('failed', msg, { ...base, exit_code: e.exitCode })
}

// An absolute file path (two segments or more, not part of a URL): a store error names its file,
// which is the service host's business, not its clients'.
const FILE_PATH = /(?<![\w:/.~-])\/[^\s"'/]+(?:\/[^\s"'/]*)+/g
const noPaths = (text: string): string => text.replace(FILE_PATH, '(a file on the service host)')
