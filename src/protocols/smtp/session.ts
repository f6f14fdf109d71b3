/**
 * SMTP (submission) pre-auth session: speaks ESMTP to the *client* until it has authenticated with
 * a local user name and password (AUTH PLAIN, AUTH LOGIN), hands them to the proxy as a `login`
 * action (a client with its own token, AUTH XOAUTH2/OAUTHBEARER: a `passthrough` action), and on
 * success stops. By then the proxy has done EHLO + AUTH upstream itself; the
 * client's next commands (MAIL FROM, ...) go upstream verbatim, so the session consumes nothing past
 * the AUTH exchange and returns whatever the client sent after it as `leftover`.
 *
 * RFC 5321 (SMTP), RFC 4954 (AUTH), RFC 3207 (STARTTLS), RFC 3463 / RFC 2034 (enhanced codes).
 *
 * EHLO advertises only what holds whichever upstream the client ends up spliced to: 8BITMIME
 * (every submission server we front has it), ENHANCEDSTATUSCODES (our own replies carry them), AUTH
 * and STARTTLS (ours). Extensions that shape the mail transaction (PIPELINING, SIZE, SMTPUTF8, DSN,
 * CHUNKING) belong to the upstream, which we cannot see before login, so they are not offered; a
 * client that re-issues EHLO after AUTH reaches the upstream and learns its real list.
 *
 * `AUTH PLAIN <initial-response>` carries the password on the command line itself;
 * smtpLineIsSensitive() recognises such lines for a transcript logger, which must also hide the
 * lines that answer a 334 continuation.
 *
 * The commands themselves are in smtp/commands.ts; this module splits each line, keeps the state
 * between lines, and gives shared/line-session.ts the SMTP wording of greetings and verdicts.
 *
 * Owns: the pre-auth SMTP dialogue up to the login verdict. Must not: open sockets, check
 * passwords, talk to the broker, log, or put a password (or a line that may hold one) into a reply.
 */
import { reply, splitCommand } from '../shared/command.js'
import { commandText } from '../shared/line-reader.js'
import { continueSasl } from '../shared/line-sasl.js'
import { createLineSession, type LineControl, type LineDialect } from '../shared/line-session.js'
import {
  replyText,
  type ClientAction,
  type LoginOutcome,
  type PreAuthSession,
  type SessionOptions,
} from '../shared/session.js'
import { SMTP_COMMANDS, SMTP_SASL, tlsRequired, type SmtpState } from './commands.js'

// RFC 3207 §4: the only commands a server that requires TLS accepts before it.
const ALLOWED_BEFORE_TLS = new Set(['NOOP', 'EHLO', 'STARTTLS', 'QUIT'])
// RFC 5321 §4.1.2: Domain = sub-domain *("." sub-domain); also address literals. We only need the
// name to be one printable token, since it is echoed nowhere and goes nowhere.
const HOSTNAME = /^[\x21-\x7e]+$/

/** Whether an SMTP client line carries a secret by itself: `AUTH <mechanism> <initial-response>`. */
export function smtpLineIsSensitive(line: string): boolean {
  return /^AUTH +\S+ +\S/i.test(line)
}

/**
 * An SMTP pre-auth session for one client connection.
 *
 * @see [RFC 4954 §4 - The AUTH Command](https://www.rfc-editor.org/rfc/rfc4954.html#section-4)
 * @see [RFC 3207 §4 - The STARTTLS Keyword](https://www.rfc-editor.org/rfc/rfc3207.html#section-4)
 */
export function createSmtpSession(opts: SessionOptions): PreAuthSession {
  // The host name goes into the greeting and the EHLO reply: it must not be able to break a line.
  if (!HOSTNAME.test(opts.hostname)) throw new RangeError('SMTP hostname must be printable ASCII without spaces')
  const st: SmtpState = { opts, host: opts.hostname, secure: opts.secure, greeted: 'none', sasl: undefined }
  return createLineSession(opts, smtpDialect(st))
}

function smtpDialect(st: SmtpState): LineDialect {
  const host = st.host
  return {
    name: 'SMTP',
    // RFC 5321 §4.2 / §3.1: the 220 greeting; "ESMTP" tells old clients to try EHLO.
    greeting: () => [reply(`220 ${host} ESMTP mailkey proxy ready`)],
    onLine: (line, out, ctl) => onLine(st, line, out, ctl),
    // Everything after the AUTH exchange (a pipelined MAIL FROM, RFC 4954 §4 allows it after an
    // initial response) is handed to the upstream as leftover by the line session.
    okReply: (text) => `235 2.7.0 ${replyText(text, 'Authentication successful')}`,
    failureReply,
    resetAfterFailure: () => {
      st.sasl = undefined
    },
    closing: {
      // RFC 5321 §4.5.3.1.4 lets a server refuse long lines; we close, so per RFC 5321 §3.8 the
      // reply is a 421 (the only reply after which a server may close on its own).
      lineTooLong: `421 4.7.0 ${host} Line too long, closing connection`,
      tooManyCommands: `421 4.7.0 ${host} Too many commands, closing connection`,
      pendingOverflow: `421 4.7.0 ${host} Too much input while authenticating, closing connection`,
      // RFC 5321 §3.8: a server closing on its own says 421 first.
      tooManyFailures: (failed) => [failed, `421 4.7.0 ${host} Too many failed logins, closing connection`],
    },
  }
}

function onLine(st: SmtpState, line: Buffer, out: ClientAction[], ctl: LineControl): void {
  const text = commandText(line)
  if (st.sasl) {
    st.sasl = continueSasl(st.sasl, text, SMTP_SASL, out, ctl)
    return
  }
  // NUL, bare CR, other controls, invalid UTF-8: refused without echoing anything.
  if (text === undefined) return void out.push(reply('500 5.5.2 Invalid characters in command'))
  // RFC 5321 §2.4: verbs are case-insensitive; the verb ends at the first space.
  const { verb, args } = splitCommand(text)
  const handler = SMTP_COMMANDS.get(verb)
  // RFC 5321 §4.2.4: 500 for a command the server does not recognise.
  if (!handler) return void out.push(reply('500 5.5.2 Command not recognized'))
  // RFC 3207 §4: with TLS required, every command but NOOP, EHLO, STARTTLS and QUIT gets 530.
  // Only when STARTTLS is on offer: without it, AUTH's own 538 says what is wrong.
  if (tlsRequired(st) && st.opts.starttlsAvailable && !ALLOWED_BEFORE_TLS.has(verb)) {
    return void out.push(reply('530 5.7.0 Must issue a STARTTLS command first'))
  }
  handler({ st, args, out, ctl })
}

/** STYLE.md §5 wire mapping; codes from RFC 4954 §6 and RFC 3463. */
function failureReply(outcome: Exclude<LoginOutcome, 'ok'>, text: string | undefined): string {
  switch (outcome) {
    case 'bad-credentials':
      return `535 5.7.8 ${replyText(text, 'Authentication credentials invalid')}`
    case 'reauth':
      return `535 5.7.8 ${replyText(text, 'Sign-in needed: run "mailkey status"')}`
    // RFC 4954 §6: 454 4.7.0 "Temporary authentication failure"; for 'config' too, so that clients
    // retry once the configuration is fixed instead of dropping the account's password.
    case 'transient':
      return `454 4.7.0 ${replyText(text, 'Temporary authentication failure')}`
    case 'config':
      return `454 4.7.0 ${replyText(text, 'mailkey is misconfigured: run "mailkey status"')}`
  }
}
