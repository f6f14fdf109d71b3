/**
 * CLI advice per error code: the exact next command. Library errors carry provider advice in
 * `hint` (no command names); the CLI adds the command here, so library users are not handed
 * CLI instructions.
 *
 * Owns: hint text. Must not: decide error classes.
 */
import { ERR, IdentityMismatchError, SignInTimeoutError, type MailkeyError } from '../errors.js'
import { waitText } from '../core/wait.js'
import { shArg } from '../core/address.js'

/** `command`: the mailkey command that failed; a failed `add` leaves no account for `status` to show. */
export function cliHint(e: MailkeyError, command?: string): string | undefined {
  // the address as one sh word: it may hold ` $ ' | & (atext, RFC 5322 §3.2.3)
  const a = e.account !== undefined ? shArg(e.account) : '<email>'
  if (command === 'add') {
    const hint = addHint(e, a)
    if (hint !== undefined) return hint
  }
  switch (e.code) {
    case ERR.REAUTH_REQUIRED:
    case ERR.NO_REFRESH_TOKEN:
    case ERR.CONSENT_REQUIRED:
      return `Run "mailkey add ${a}" to sign in again.`
    case ERR.CLIENT_REJECTED:
      return `Run "mailkey add ${a}" to sign in again (with --client-id ID if you have your own app registration).`
    case ERR.FLOW_BLOCKED:
      return `Your organisation blocks this kind of sign-in: run "mailkey add ${a} --browser" (or --paste over SSH).`
    case ERR.IDENTITY_MISMATCH: {
      const who = e instanceof IdentityMismatchError ? shellWord(e.signedInAs) : '<address>'
      return (
        `If that was not you, someone else completed this sign-in: run "mailkey add ${a}" again and sign in as ${a} yourself.\n` +
        `  If ${a} really signs in as ${who} (an alias, or a shared mailbox named as the account), say so: "mailkey add ${a} --sign-in-as ${who}".\n` +
        `  To open a shared mailbox with ${who}'s own account instead: "mailkey add ${who} --mailbox ${a}".`
      )
    }
    case ERR.STATE_MISMATCH:
      return `Run "mailkey add ${a}" again and finish the sign-in in the browser window it opens.`
    case ERR.SIGNIN_DECLINED:
      return `Run "mailkey add ${a}" again and approve the request.`
    case ERR.SIGNIN_TIMEOUT:
      if (e instanceof SignInTimeoutError && e.flow !== undefined) return timeoutHint(e, a)
      return `Run "mailkey add ${a}" again and finish signing in before the code expires.`
    case ERR.SIGNIN_EXPIRED:
      return `Run "mailkey add ${a}" again and finish signing in before the code expires.`
    case ERR.OAUTH_TRANSIENT:
      if (e.retryAfterSec !== undefined && e.retryAfterSec > 60)
        return `Nothing was lost; try again in ${waitText(e.retryAfterSec)}. "mailkey status ${a}" shows the last error.`
    // falls through: the same hint as a busy lock
    case ERR.STORE_LOCK_TIMEOUT:
      return `Nothing was lost; try again in a minute. "mailkey status ${a}" shows the last error.`
    case ERR.ACCOUNT_UNKNOWN:
      return undefined // the error's own hint names the command
    case ERR.OAUTH_CONFIG:
      return `Check the provider settings with "mailkey status ${a}", then run "mailkey add ${a}" with corrected flags.`
    case ERR.INTERRUPTED:
      return undefined
    default:
      return undefined
  }
}

/** After a failed `add`: no account was set up, so the advice is the command to run again. */
function addHint(e: MailkeyError, a: string): string | undefined {
  switch (e.code) {
    case ERR.OAUTH_TRANSIENT:
    case ERR.STORE_LOCK_TIMEOUT: {
      const wait = e.retryAfterSec !== undefined && e.retryAfterSec > 60 ? waitText(e.retryAfterSec) : 'a minute'
      return `No account was set up; run "mailkey add ${a}" again in ${wait}.`
    }
    case ERR.OAUTH_CONFIG:
      return `No account was set up; run "mailkey add ${a}" again with corrected flags (--issuer, --token-url, --provider ...).`
    default:
      return undefined
  }
}

/**
 * A browser or paste sign-in that timed out. After a loopback wait: the other ways to sign in,
 * and --port for a server that compares redirect_uri byte for byte (no RFC 8252 any-port rule).
 */
function timeoutHint(e: SignInTimeoutError, a: string): string {
  const ways = e.otherFlows
    .filter((f) => f !== 'browser')
    .map(
      (f) =>
        `"mailkey add ${a} --${f}"${f === 'device' ? ' (a code to enter on any device)' : ' (paste back the address the browser ends on)'}`,
    )
  if (e.flow === 'browser' && e.redirectUri) {
    return (
      (ways.length > 0 ? `Sign in another way: ${ways.join(' or ')}.\n  ` : '') +
      `If the server wants the port it has registered: "mailkey add ${a} --port PORT".`
    )
  }
  const again = `Run "mailkey add ${a}" again and finish signing in in time (--timeout SEC waits longer)`
  return ways.length > 0 ? `${again}, or sign in another way: ${ways.join(' or ')}.` : `${again}.`
}

/** A name from a server, quoted for a shell when it holds anything but address characters. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9._%+@-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}
