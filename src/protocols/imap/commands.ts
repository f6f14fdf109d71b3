/**
 * The IMAP commands a client may send before login (RFC 9051 §6.1, §6.2): one handler per verb, in
 * a table that handleCommand() looks a framed command up in, and the session state they act on.
 * LOGIN (quoted strings and literals), AUTHENTICATE PLAIN / LOGIN (with and without RFC 4959
 * SASL-IR) and a client's own XOAUTH2/OAUTHBEARER (shared/sasl-exchange.ts) end in a `login` or
 * `passthrough` action; CAPABILITY, NOOP, ID (RFC 2971), STARTTLS and LOGOUT are answered here.
 *
 * Owns: each command's replies and its effect on the session state. Must not: frame bytes
 * (imap/framing.ts does), open sockets, check passwords, or put a password into a reply.
 */
import { Secret } from '../../core/secret.js'
import { reply } from '../shared/command.js'
import {
  clientSaslMechanism,
  offeredSaslMechanisms,
  saslStart,
  type SaslExchange,
  type SaslFailure,
  type SaslStep,
} from '../shared/sasl-exchange.js'
import type { ClientAction, SessionLimits, SessionOptions } from '../shared/session.js'
import { parseCommand, tokenize, type ImapFramer, type Part } from './framing.js'

/** What one IMAP session knows between commands. */
export interface ImapState {
  readonly opts: SessionOptions
  readonly limits: SessionLimits
  readonly framer: ImapFramer
  /** the client connection is TLS: from the start, or since STARTTLS */
  secure: boolean
  /** an AUTHENTICATE exchange that awaits the client's next line */
  sasl: { tag: string; exchange: SaslExchange } | undefined
  /** the command whose login the proxy is checking; nothing is read until its verdict */
  pending: { tag: string } | undefined
  /** commands read so far (SASL response lines are not commands) */
  commands: number
  /** failed logins so far */
  failures: number
  /** nothing more is read: closed, or logged in and spliced */
  closed: boolean
}

/** One command, framed and parsed, and the state its handler acts on. */
interface ImapCommand {
  st: ImapState
  tag: string
  /** the text after the verb, then the command's literals */
  args: Part[]
}

type Handler = (cmd: ImapCommand) => ClientAction[]

/** Close with `* BYE <text>`; nothing read so far is needed any more, so it is not kept while the socket lingers. */
export function bye(st: ImapState, text: string): ClientAction[] {
  st.closed = true
  st.framer.discard()
  return [{ type: 'close', data: `* BYE ${text}\r\n` }]
}

export function capabilities(st: ImapState): string {
  const c = ['IMAP4rev1', 'LITERAL+', 'SASL-IR', 'ID', 'ENABLE']
  if (st.opts.starttlsAvailable && !st.secure) c.push('STARTTLS')
  // RFC 9051 §6.2.3 / RFC 3501 §6.2.3: no plain-text login without TLS where TLS is required,
  // and no AUTH= either (RFC 9051 §7.2.2: mechanisms are advertised only where they may be used).
  if (st.opts.requireTls && !st.secure) c.push('LOGINDISABLED')
  else c.push(...offeredSaslMechanisms(st.opts.oauthPassthrough).map((m) => `AUTH=${m}`))
  return c.join(' ')
}

/** Answer one framed command (before login, RFC 9051 §6.1 and §6.2 only). */
export function handleCommand(st: ImapState, parts: Part[]): ClientAction[] {
  st.commands++
  const cmd = parseCommand(parts)
  if ('invalid' in cmd) return [reply(`${cmd.tag} BAD Invalid command syntax`)]
  if (st.commands > st.limits.maxCommands)
    return [reply(`${cmd.tag} BAD Too many commands before login`), ...bye(st, 'Too many commands')]
  const handler = IMAP_COMMANDS.get(cmd.verb) ?? unknown
  return handler({ st, tag: cmd.tag, args: cmd.args })
}

const SASL_FAILURES: Record<SaslFailure, string> = {
  // RFC 9051 §6.2.2: a cancelled exchange is answered BAD.
  cancelled: 'BAD AUTHENTICATE cancelled',
  undecodable: 'BAD Invalid SASL response',
  authzid: 'NO [AUTHORIZATIONFAILED] Authorization identity must be empty or the user name',
  'no-user': 'NO [AUTHENTICATIONFAILED] The OAuth response names no user',
}

/** Answer a step of the AUTHENTICATE exchange of command `tag`. */
export function saslStep(st: ImapState, tag: string, step: SaslStep): ClientAction[] {
  switch (step.kind) {
    case 'challenge':
      // RFC 9051 §7.5: a continuation request carries the base64 challenge.
      st.sasl = { tag, exchange: step.exchange }
      return [reply(`+ ${step.text}`)]
    case 'done':
      st.pending = { tag }
      return [step.action]
    case 'fail':
      return [reply(`${tag} ${SASL_FAILURES[step.why]}`)]
  }
}

const tlsRequired = (st: ImapState): boolean => st.opts.requireTls && !st.secure

function capability({ st, tag }: ImapCommand): ClientAction[] {
  return [reply(`* CAPABILITY ${capabilities(st)}`), reply(`${tag} OK CAPABILITY completed`)]
}

function noop({ tag }: ImapCommand): ClientAction[] {
  return [reply(`${tag} OK NOOP completed`)]
}

function id({ tag }: ImapCommand): ClientAction[] {
  // RFC 2971 §3.1: the server may answer NIL.
  return [reply('* ID NIL'), reply(`${tag} OK ID completed`)]
}

function logout({ st, tag }: ImapCommand): ClientAction[] {
  st.closed = true
  return [{ type: 'close', data: `* BYE Logging out\r\n${tag} OK LOGOUT completed\r\n` }]
}

function starttls({ st, tag }: ImapCommand): ClientAction[] {
  if (st.secure || !st.opts.starttlsAvailable) return [reply(`${tag} BAD STARTTLS not available`)]
  // RFC 9051 §6.2.1: after OK the TLS negotiation begins; nothing before it is trusted.
  st.framer.clearInput()
  st.secure = true
  return [reply(`${tag} OK Begin TLS negotiation now`), { type: 'starttls' }]
}

function login({ st, tag, args }: ImapCommand): ClientAction[] {
  if (tlsRequired(st)) return [reply(`${tag} NO [PRIVACYREQUIRED] Use STARTTLS or TLS first`)]
  const astrings = tokenize(args)
  if (!astrings || astrings.length !== 2) return [reply(`${tag} BAD LOGIN needs a user name and a password`)]
  const [user, pass] = astrings as [Buffer, Buffer]
  st.pending = { tag }
  return [{ type: 'login', username: user.toString('utf8'), password: new Secret(pass.toString('utf8')) }]
}

function authenticate({ st, tag, args }: ImapCommand): ClientAction[] {
  if (tlsRequired(st)) return [reply(`${tag} NO [PRIVACYREQUIRED] Use STARTTLS or TLS first`)]
  const astrings = tokenize(args)
  if (!astrings || astrings.length < 1 || astrings.length > 2) {
    return [reply(`${tag} BAD AUTHENTICATE needs a mechanism`)]
  }
  const mech = clientSaslMechanism((astrings[0] as Buffer).toString('latin1'), st.opts.oauthPassthrough)
  if (!mech) return [reply(`${tag} NO [CANNOT] Unsupported authentication mechanism`)]
  // RFC 4959 §3: the initial response is the second argument ("=" for an empty one).
  return saslStep(st, tag, saslStart(mech, astrings[1]?.toString('latin1')))
}

function logInFirst({ tag }: ImapCommand): ClientAction[] {
  return [reply(`${tag} BAD Log in first`)]
}

function unknown({ tag }: ImapCommand): ClientAction[] {
  return [reply(`${tag} BAD Unknown command`)]
}

// Commands of the authenticated and selected states (RFC 9051 §6.3, §6.4): out of sequence here.
const AUTHENTICATED_VERBS = [
  'SELECT',
  'EXAMINE',
  'LIST',
  'LSUB',
  'STATUS',
  'FETCH',
  'STORE',
  'SEARCH',
  'APPEND',
  'CREATE',
  'DELETE',
  'RENAME',
  'SUBSCRIBE',
  'UNSUBSCRIBE',
  'UID',
  'CLOSE',
  'EXPUNGE',
  'IDLE',
  'ENABLE',
  'NAMESPACE',
  'CHECK',
  'COPY',
  'MOVE',
]

/** Verb -> handler. A Map: a verb such as "constructor" must find nothing. */
const IMAP_COMMANDS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ['CAPABILITY', capability],
  ['NOOP', noop],
  ['ID', id],
  ['LOGOUT', logout],
  ['STARTTLS', starttls],
  ['LOGIN', login],
  ['AUTHENTICATE', authenticate],
  ...AUTHENTICATED_VERBS.map((verb): [string, Handler] => [verb, logInFirst]),
])
