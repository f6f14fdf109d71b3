/**
 * The POP3 commands a client may send before login (RFC 1939 §4, the AUTHORIZATION state): one
 * handler per keyword, in a table that pop3/session.ts looks a split command line up in, and the
 * session state they act on.
 *
 * Owns: each command's replies and its effect on the session state. Must not: frame lines, count
 * commands or failed logins (shared/line-session.ts does), open sockets, check passwords, or put a
 * password (or a line that may hold one) into a reply.
 */
import { Secret } from '../../core/secret.js'
import { reply } from '../shared/command.js'
import { answerSaslStep, type SaslWording } from '../shared/line-sasl.js'
import type { LineControl } from '../shared/line-session.js'
import {
  clientSaslMechanism,
  offeredSaslMechanisms,
  saslStart,
  type SaslExchange,
  type SaslStep,
} from '../shared/sasl-exchange.js'
import type { ClientAction, SessionOptions } from '../shared/session.js'

export type Pop3Mode =
  /** AUTHORIZATION state; `user` is set right after an accepted USER (RFC 1939 §7) */
  | { kind: 'command'; user?: string }
  /** a SASL exchange awaits the client's next line (RFC 5034 §4) */
  | { kind: 'sasl'; exchange: SaslExchange }

/** What one POP3 session knows between lines. */
export interface Pop3State {
  readonly opts: SessionOptions
  /** the client connection is TLS: from the start, or since STLS */
  secure: boolean
  mode: Pop3Mode
}

/** One command line, split, and what its handler acts on. */
export interface Pop3Command {
  st: Pop3State
  /** the rest of the line after the keyword and its single space; undefined without a space */
  arg: string | undefined
  /** the user of an accepted USER on the line just before, if any (already forgotten in `st`) */
  user: string | undefined
  out: ClientAction[]
  ctl: LineControl
}

type Handler = (cmd: Pop3Command) => void

export const POP3_SASL: SaslWording = {
  // RFC 5034 §4: a continuation is "+ " and the base64 challenge.
  continuation: '+',
  failures: {
    // RFC 5034 §4: a lone "*" cancels the exchange and the server answers -ERR.
    cancelled: '-ERR authentication cancelled',
    // RFC 5034 §4: a response the server cannot decode fails the AUTH command with -ERR.
    undecodable: '-ERR invalid SASL response',
    // RFC 4616 §2: we only log users in as themselves.
    authzid: '-ERR [AUTH] Authorization identity must be empty or the user name',
    'no-user': '-ERR [AUTH] The OAuth response names no user',
  },
}

/** The mode after a SASL step: waiting for the next line of `exchange`, or back to commands. */
export function awaitSasl(st: Pop3State, exchange: SaslExchange | undefined): void {
  st.mode = exchange ? { kind: 'sasl', exchange } : { kind: 'command' }
}

function saslStep(st: Pop3State, step: SaslStep, out: ClientAction[], ctl: LineControl): void {
  awaitSasl(st, answerSaslStep(step, POP3_SASL, out, ctl))
}

const tlsRequired = (st: Pop3State): boolean => st.opts.requireTls && !st.secure

function tlsRequiredReply(st: Pop3State): ClientAction {
  // RFC 3206 §5: [AUTH] covers "an attempt to authenticate in violation of policy".
  return reply(
    st.opts.starttlsAvailable
      ? '-ERR [AUTH] TLS required: send STLS first'
      : '-ERR [AUTH] TLS required: connect with TLS',
  )
}

function capa({ st, out }: Pop3Command): void {
  // RFC 2449 §5: one capability per line, ended by a lone ".".
  const caps: string[] = []
  // RFC 2595 §4 / RFC 2449 §6.3, §6.8: neither USER nor SASL before STLS where TLS must come
  // first, so a client never offers a credential in clear (the commands are refused anyway).
  // SASL: PLAIN and LOGIN carry the local password; XOAUTH2 and OAUTHBEARER (a client with its
  // own token) only where the listener passes them through.
  if (!tlsRequired(st)) caps.push('USER', `SASL ${offeredSaslMechanisms(st.opts.oauthPassthrough).join(' ')}`)
  // RFC 2449 §6.4 / §8 and RFC 3206: these two license the bracketed codes in our -ERR replies.
  caps.push('RESP-CODES', 'AUTH-RESP-CODE')
  // RFC 2595 §4: STLS only before TLS is active (and so never again after it).
  if (st.opts.starttlsAvailable && !st.secure) caps.push('STLS')
  caps.push('IMPLEMENTATION mailkey')
  out.push(reply(`+OK Capability list follows\r\n${caps.join('\r\n')}\r\n.`))
}

function user({ st, arg, out }: Pop3Command): void {
  if (tlsRequired(st)) return void out.push(tlsRequiredReply(st))
  const name = arg?.trim() ?? ''
  if (name.length === 0) return void out.push(reply('-ERR missing user name'))
  if (name.includes('\t')) return void out.push(reply('-ERR invalid user name'))
  // RFC 1939 §7: the mailbox cannot be checked before PASS; any name is accepted here.
  st.mode = { kind: 'command', user: name }
  out.push(reply('+OK send PASS'))
}

function pass({ st, arg, user, out, ctl }: Pop3Command): void {
  if (tlsRequired(st)) return void out.push(tlsRequiredReply(st))
  // RFC 1939 §7: PASS only immediately after a successful USER.
  if (user === undefined) return void out.push(reply('-ERR send USER first'))
  // RFC 1939 §7 (PASS, "Discussion"): the whole rest of the line is the password, spaces
  // included, so it is taken verbatim after the single space that ends the keyword.
  if (arg === undefined || arg.length === 0) return void out.push(reply('-ERR missing password'))
  ctl.login(out, user, new Secret(arg))
}

function auth({ st, arg, out, ctl }: Pop3Command): void {
  if (tlsRequired(st)) return void out.push(tlsRequiredReply(st))
  const parts = (arg ?? '').split(' ').filter((p) => p.length > 0)
  // Not in RFC 5034 (nor RFC 1734): a bare AUTH lists the mechanisms, "+OK" then one per line
  // and ".", an old convention that Outlook and other clients still rely on.
  if (parts.length === 0) {
    return void out.push(reply(`+OK\r\n${offeredSaslMechanisms(st.opts.oauthPassthrough).join('\r\n')}\r\n.`))
  }
  if (parts.length > 2) return void out.push(reply('-ERR syntax: AUTH mechanism [initial-response]'))
  const [name = '', ir] = parts
  const mech = clientSaslMechanism(name, st.opts.oauthPassthrough)
  // RFC 5034 §4: a mechanism the server does not support fails the AUTH command.
  if (!mech) return void out.push(reply('-ERR Unsupported mechanism'))
  saslStep(st, saslStart(mech, ir), out, ctl)
}

function stls({ st, out, ctl }: Pop3Command): void {
  // RFC 2595 §4: STLS is refused once TLS is active.
  if (st.secure) return void out.push(reply('-ERR TLS already active'))
  if (!st.opts.starttlsAvailable) return void out.push(reply('-ERR STLS not available'))
  out.push(reply('+OK Begin TLS negotiation'), { type: 'starttls' })
  // RFC 2595 §4 (and RFC 3207 §4.2 for SMTP): after TLS, forget what the client said in the
  // clear (the USER is already gone: any command clears it), and discard bytes that followed
  // STLS in the clear: they would otherwise be read as if they had come over TLS.
  ctl.clearInput()
  st.secure = true
  st.mode = { kind: 'command' }
}

function quit({ out, ctl }: Pop3Command): void {
  // RFC 1939 §4: QUIT in the AUTHORIZATION state ends the session without an UPDATE state.
  ctl.close(out, '+OK bye')
}

function apop({ out }: Pop3Command): void {
  // RFC 1939 §7: APOP needs a timestamp in the greeting; we send none.
  out.push(reply('-ERR APOP not supported'))
}

function notLoggedIn({ out }: Pop3Command): void {
  out.push(reply('-ERR not logged in yet'))
}

// RFC 1939 §5: transaction-state commands. Before login they are out of sequence, not unknown.
const TRANSACTION_VERBS = ['STAT', 'LIST', 'RETR', 'DELE', 'NOOP', 'RSET', 'TOP', 'UIDL', 'LAST']

/** Keyword -> handler. A Map: a keyword such as "constructor" must find nothing. */
export const POP3_COMMANDS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ['CAPA', capa],
  ['USER', user],
  ['PASS', pass],
  ['AUTH', auth],
  ['STLS', stls],
  ['QUIT', quit],
  ['APOP', apop],
  ...TRANSACTION_VERBS.map((verb): [string, Handler] => [verb, notLoggedIn]),
])
