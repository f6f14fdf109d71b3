/**
 * The IMAP pre-auth session of `mailkey proxy` (RFC 9051 / RFC 3501): talks to the client until it
 * logs in with LOGIN (quoted strings and literals, RFC 7888 LITERAL+), AUTHENTICATE PLAIN
 * (RFC 4616, with and without RFC 4959 SASL-IR) or AUTHENTICATE LOGIN, or passes a client's own
 * AUTHENTICATE XOAUTH2/OAUTHBEARER through (shared/sasl-exchange.ts); answers CAPABILITY, NOOP,
 * ID (RFC 2971), STARTTLS and LOGOUT itself. Then the proxy splices.
 *
 * The parts: imap/framing.ts turns bytes into commands (the codec), imap/commands.ts answers each
 * command from a table; this module drives them and takes the login verdict (closing after too
 * many failed logins).
 *
 * Owns: the pre-auth IMAP state machine up to the login verdict. Must not: open sockets or know
 * about OAuth.
 */
import { reply } from '../shared/command.js'
import { saslContinue } from '../shared/sasl-exchange.js'
import {
  replyText,
  resolveLimits,
  type ClientAction,
  type LoginOutcome,
  type LoginResult,
  type PreAuthSession,
  type SessionOptions,
} from '../shared/session.js'
import { bye, capabilities, handleCommand, saslStep, type ImapState } from './commands.js'
import { ImapFramer } from './framing.js'

export function createImapSession(opts: SessionOptions): PreAuthSession {
  const limits = resolveLimits(opts.limits)
  const st: ImapState = {
    opts,
    limits,
    framer: new ImapFramer(limits),
    secure: opts.secure,
    sasl: undefined,
    pending: undefined,
    commands: 0,
    failures: 0,
    closed: false,
  }
  return {
    start: () => [reply(`* OK [CAPABILITY ${capabilities(st)}] ${opts.hostname} mailkey IMAP proxy ready`)],
    feed(data: Buffer): ClientAction[] {
      if (st.closed) return []
      st.framer.push(data)
      return pump(st)
    },
    loginResult: (outcome, info) => loginResult(st, outcome, info),
  }
}

/** Answer framed input until it runs out, the session closes, or a login awaits its verdict. */
function pump(st: ImapState): ClientAction[] {
  const out: ClientAction[] = []
  while (!st.closed && !st.pending) {
    const event = st.framer.next(st.sasl !== undefined)
    if (event.kind === 'more') break
    if (event.kind === 'fatal') {
      out.push(reply(event.reply), ...bye(st, event.bye))
      break
    }
    if (event.kind === 'literal-ready') out.push(reply('+ Ready for literal data'))
    else if (event.kind === 'sasl-line') out.push(...saslResponse(st, event.line))
    else out.push(...handleCommand(st, event.parts))
  }
  return out
}

/** A SASL client response line (RFC 9051 §6.2.2): "*" cancels, "=" is an empty response. */
function saslResponse(st: ImapState, line: string): ClientAction[] {
  const current = st.sasl
  if (!current) return []
  st.sasl = undefined
  return saslStep(st, current.tag, saslContinue(current.exchange, line))
}

function loginResult(st: ImapState, outcome: LoginOutcome, info: { text?: string } | undefined): LoginResult {
  const p = st.pending
  if (!p) return { actions: [], done: false }
  st.pending = undefined
  if (outcome === 'ok') {
    st.closed = true
    const leftover = st.framer.leftover()
    return { actions: [reply(`${p.tag} OK Logged in`)], done: true, ...(leftover ? { leftover } : {}) }
  }
  const actions: ClientAction[] = [reply(failureLine(p.tag, outcome, info?.text))]
  if (++st.failures >= st.limits.maxFailedLogins) actions.push(...bye(st, 'Too many failed logins'))
  else actions.push(...pump(st))
  return { actions, done: false }
}

/** STYLE.md §5 wire mapping; response codes from RFC 5530. */
function failureLine(tag: string, outcome: Exclude<LoginOutcome, 'ok'>, info: string | undefined): string {
  const text = info ? ` ${replyText(info, '')}`.trimEnd() : ''
  return {
    'bad-credentials': `${tag} NO [AUTHENTICATIONFAILED] Invalid credentials`,
    reauth: `${tag} NO [AUTHENTICATIONFAILED] This account needs a new sign-in: run "mailkey status"${text}`,
    transient: `${tag} NO [UNAVAILABLE] Temporary failure, try again later${text}`,
    config: `${tag} NO [CONTACTADMIN] The mailkey proxy cannot log in to this account: see "mailkey status"${text}`,
  }[outcome]
}
