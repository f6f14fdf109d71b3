/**
 * POP3 pre-auth session: speaks POP3 to the *client* until it has given a local user name and
 * password (USER/PASS, AUTH PLAIN, AUTH LOGIN), hands them to the proxy as a `login` action (or, for
 * a client with its own token, AUTH XOAUTH2/OAUTHBEARER as a `passthrough` action), and on
 * success stops, returning any bytes the client pipelined after the login so the proxy can forward
 * them to the already-authenticated upstream connection.
 *
 * RFC 1939 (POP3), RFC 2449 (CAPA, RESP-CODES), RFC 5034 (AUTH), RFC 3206 (AUTH, SYS/TEMP,
 * SYS/PERM codes), RFC 2595 §4 (STLS).
 *
 * pop3LineIsSensitive() recognises a line that carries a secret by itself (PASS, APOP, `AUTH
 * PLAIN <initial-response>`, perhaps pipelined behind other commands), for a transcript logger;
 * such a logger must also hide the lines that answer a SASL continuation.
 *
 * The commands themselves are in pop3/commands.ts; this module splits each line, keeps the state
 * between lines, and gives shared/line-session.ts the POP3 wording of greetings and verdicts.
 *
 * Owns: the POP3 AUTHORIZATION state up to the login verdict. Must not: open sockets, check
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
import { POP3_COMMANDS, POP3_SASL, awaitSasl, type Pop3State } from './commands.js'

export const POP3_GREETING = '+OK mailkey POP3 proxy ready'

/**
 * Whether a POP3 client line carries a secret by itself, whatever state the session is in: `PASS
 * ...`, `APOP ...` and `AUTH <mechanism> <initial-response>`.
 */
export function pop3LineIsSensitive(line: string): boolean {
  return /^(?:PASS|APOP)(?: |$)/i.test(line) || /^AUTH +\S+ +\S/i.test(line)
}

/**
 * A POP3 pre-auth session for one client connection.
 *
 * @see [RFC 1939 §4 - The AUTHORIZATION State](https://www.rfc-editor.org/rfc/rfc1939.html#section-4)
 * @see [RFC 5034 §4 - The AUTH Command](https://www.rfc-editor.org/rfc/rfc5034.html#section-4)
 */
export function createPop3Session(opts: SessionOptions): PreAuthSession {
  const st: Pop3State = { opts, secure: opts.secure, mode: { kind: 'command' } }
  return createLineSession(opts, pop3Dialect(st))
}

function pop3Dialect(st: Pop3State): LineDialect {
  return {
    name: 'POP3',
    // RFC 1939 §4: the greeting; no APOP timestamp, since APOP is not offered.
    greeting: () => [reply(POP3_GREETING)],
    onLine: (line, out, ctl) => onLine(st, line, out, ctl),
    okReply: (text) => `+OK ${sanitizeText(text, 'Logged in.')}`,
    failureReply,
    resetAfterFailure: () => {
      st.mode = { kind: 'command' }
    },
    closing: {
      lineTooLong: '-ERR line too long',
      tooManyCommands: '-ERR too many commands before login',
      pendingOverflow: '-ERR too much input while logging in',
      // the failure reply itself is the last word
      tooManyFailures: (failed) => [failed],
    },
  }
}

function onLine(st: Pop3State, line: Buffer, out: ClientAction[], ctl: LineControl): void {
  const text = commandText(line)
  const mode = st.mode
  if (mode.kind === 'sasl') return awaitSasl(st, continueSasl(mode.exchange, text, POP3_SASL, out, ctl))
  // RFC 1939 §7: PASS must come immediately after USER, so any other line forgets the USER.
  st.mode = { kind: 'command' }
  // NUL, bare CR, other controls, invalid UTF-8: refused without echoing anything.
  if (text === undefined) return void out.push(reply('-ERR invalid characters in command'))
  // RFC 1939 §3: keyword, then arguments each after a single space; keywords are case-insensitive.
  const { verb, args } = splitCommand(text)
  const handler = POP3_COMMANDS.get(verb)
  if (!handler) return void out.push(reply(verb.length === 0 ? '-ERR empty command' : '-ERR unknown command'))
  handler({ st, arg: args, user: mode.user, out, ctl })
}

/**
 * RFC 3206 §4 (SYS/TEMP, SYS/PERM) and §5 (AUTH) codes, sent because our CAPA always advertises
 * RESP-CODES and AUTH-RESP-CODE (RFC 2449 §6.4, §8). STYLE.md §5 wire mapping.
 */
function failureReply(outcome: Exclude<LoginOutcome, 'ok'>, text: string | undefined): string {
  switch (outcome) {
    case 'bad-credentials':
      return `-ERR [AUTH] ${sanitizeText(text, 'Invalid credentials.')}`
    case 'reauth':
      return `-ERR [AUTH] ${sanitizeText(text, 'Sign-in needed: run "mailkey status"')}`
    case 'transient':
      return `-ERR [SYS/TEMP] ${sanitizeText(text, 'Temporary failure, try again later.')}`
    case 'config':
      return `-ERR [SYS/PERM] ${sanitizeText(text, 'mailkey is misconfigured: run "mailkey status"')}`
  }
}

/** The proxy's text for a reply, never starting with "[" (it would pose as a response code, RFC 2449 §8). */
function sanitizeText(text: string | undefined, fallback: string): string {
  return replyText(text?.replace(/^[\s\x00-\x1f\x7f]*\[+/, ''), fallback)
}
