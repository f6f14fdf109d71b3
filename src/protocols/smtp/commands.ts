/**
 * The SMTP commands a client may send before it has authenticated (RFC 5321, RFC 4954 AUTH, RFC
 * 3207 STARTTLS): one handler per verb, in a table that smtp/session.ts looks a split command line
 * up in, and the session state they act on.
 *
 * Owns: each command's replies and its effect on the session state. Must not: frame lines, count
 * commands or failed logins (shared/line-session.ts does), open sockets, check passwords, or put a
 * password (or a line that may hold one) into a reply.
 */
import { reply } from '../shared/command.js'
import { answerSaslStep, type SaslWording } from '../shared/line-sasl.js'
import type { LineControl } from '../shared/line-session.js'
import { clientSaslMechanism, offeredSaslMechanisms, saslStart, type SaslExchange } from '../shared/sasl-exchange.js'
import type { ClientAction, SessionOptions } from '../shared/session.js'

/** What one SMTP session knows between lines. */
export interface SmtpState {
  readonly opts: SessionOptions
  /** the host name in the greeting and the EHLO reply (checked printable, without spaces) */
  readonly host: string
  /** the client connection is TLS: from the start, or since STARTTLS */
  secure: boolean
  /** the greeting the client has given: RFC 4954 §3 makes AUTH an EHLO-only extension */
  greeted: 'none' | 'helo' | 'ehlo'
  /** a SASL exchange that awaits the client's next line (RFC 4954 §4) */
  sasl: SaslExchange | undefined
}

/** One command line, split, and what its handler acts on. */
export interface SmtpCommand {
  st: SmtpState
  /** the rest of the line after the verb and its space; undefined without a space */
  args: string | undefined
  out: ClientAction[]
  ctl: LineControl
}

type Handler = (cmd: SmtpCommand) => void

export const SMTP_SASL: SaslWording = {
  // RFC 4954 §4: a continuation is "334 " and the base64 challenge.
  continuation: '334',
  failures: {
    // RFC 4954 §4: "*" cancels the exchange; the server answers 501.
    cancelled: '501 5.0.0 Authentication cancelled',
    // RFC 4954 §4: a response that cannot be base64-decoded fails AUTH with 501 5.5.2. A response
    // that decodes but is malformed for its mechanism gets the same reply.
    undecodable: '501 5.5.2 Cannot decode response',
    // RFC 4616 §2: we only log users in as themselves. Not counted as a failed login: no password
    // was checked.
    authzid: '535 5.7.8 Authorization identity must be empty or the user name',
    'no-user': '535 5.7.8 The OAuth response names no user',
  },
}

export const tlsRequired = (st: SmtpState): boolean => st.opts.requireTls && !st.secure

function ehlo({ st, args, out }: SmtpCommand): void {
  // RFC 5321 §4.1.1.1: EHLO takes a domain (or address literal); we do not check it further
  // (RFC 5321 §4.1.4: the server MUST NOT refuse a message because the name is wrong).
  if (args === undefined || args.trim().length === 0) return void out.push(reply('501 5.5.4 Syntax: EHLO domain'))
  st.greeted = 'ehlo'
  const lines = [st.host, '8BITMIME', 'ENHANCEDSTATUSCODES']
  // RFC 4954 §4 + RFC 3207 §4: no plain-text AUTH offered where TLS must come first.
  if (!tlsRequired(st)) lines.push(`AUTH ${offeredSaslMechanisms(st.opts.oauthPassthrough).join(' ')}`)
  // RFC 3207 §4.2: STARTTLS is not offered again once TLS is active.
  if (st.opts.starttlsAvailable && !st.secure) lines.push('STARTTLS')
  out.push(multiline(250, lines))
}

function helo({ st, args, out }: SmtpCommand): void {
  if (args === undefined || args.trim().length === 0) return void out.push(reply('501 5.5.4 Syntax: HELO domain'))
  st.greeted = 'helo'
  out.push(reply(`250 ${st.host}`))
}

function auth({ st, args, out, ctl }: SmtpCommand): void {
  if (tlsRequired(st)) {
    // RFC 3207 §4 when STARTTLS is on offer; otherwise RFC 4954 §6's "encryption required".
    return void out.push(
      reply(
        st.opts.starttlsAvailable
          ? '530 5.7.0 Must issue a STARTTLS command first'
          : '538 5.7.11 Encryption required for requested authentication mechanism',
      ),
    )
  }
  // RFC 4954 §3: AUTH is an EHLO keyword, so it is out of sequence before EHLO (or after HELO).
  if (st.greeted !== 'ehlo') return void out.push(reply('503 5.5.1 Send EHLO first'))
  const parts = (args ?? '').split(' ').filter((p) => p.length > 0)
  if (parts.length === 0 || parts.length > 2) {
    return void out.push(reply('501 5.5.4 Syntax: AUTH mechanism [initial-response]'))
  }
  const [name = '', ir] = parts
  const mech = clientSaslMechanism(name, st.opts.oauthPassthrough)
  // RFC 4954 §4: a mechanism the server does not support fails with 504 5.5.4.
  if (!mech) return void out.push(reply('504 5.5.4 Unrecognized authentication type'))
  st.sasl = answerSaslStep(saslStart(mech, ir), SMTP_SASL, out, ctl)
}

function starttls({ st, args, out, ctl }: SmtpCommand): void {
  // RFC 3207 §4: STARTTLS takes no parameters.
  if (args !== undefined && args.trim().length > 0) return void out.push(reply('501 5.5.4 Syntax: STARTTLS'))
  if (st.secure) return void out.push(reply('503 5.5.1 TLS already active'))
  if (!st.opts.starttlsAvailable) return void out.push(reply('502 5.5.1 STARTTLS not supported'))
  out.push(reply('220 2.0.0 Ready to start TLS'), { type: 'starttls' })
  // RFC 3207 §4.2: the server MUST discard any knowledge obtained from the client (the EHLO
  // argument included) before TLS. Bytes that followed STARTTLS in the clear are dropped too:
  // reading them as if they came over TLS is the command-injection hole (CVE-2011-0411).
  ctl.clearInput()
  st.secure = true
  st.greeted = 'none'
  st.sasl = undefined
}

function rset({ out }: SmtpCommand): void {
  // RFC 5321 §4.1.1.5: RSET does not undo EHLO; there is no transaction to abort yet.
  out.push(reply('250 2.0.0 OK'))
}

function noop({ out }: SmtpCommand): void {
  out.push(reply('250 2.0.0 OK'))
}

function help({ out }: SmtpCommand): void {
  out.push(reply('214 2.0.0 mailkey proxy: EHLO, AUTH PLAIN or LOGIN, then mail as usual'))
}

function quit({ st, out, ctl }: SmtpCommand): void {
  // RFC 5321 §4.1.1.10: 221, then close.
  ctl.close(out, `221 2.0.0 ${st.host} closing connection`)
}

function authFirst({ out }: SmtpCommand): void {
  // RFC 4954 §6: 530 5.7.0 for commands refused until the client has authenticated.
  out.push(reply('530 5.7.0 Authentication required'))
}

// Commands of a mail transaction, and others a submission server keeps for authenticated users.
const AUTH_FIRST_VERBS = ['MAIL', 'RCPT', 'DATA', 'BDAT', 'VRFY', 'EXPN', 'ETRN']

/** Verb -> handler. A Map: a verb such as "constructor" must find nothing. */
export const SMTP_COMMANDS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ['EHLO', ehlo],
  ['HELO', helo],
  ['AUTH', auth],
  ['STARTTLS', starttls],
  ['RSET', rset],
  ['NOOP', noop],
  ['HELP', help],
  ['QUIT', quit],
  ...AUTH_FIRST_VERBS.map((verb): [string, Handler] => [verb, authFirst]),
])

/** RFC 5321 §4.2.1: every line but the last has "-" after the code. */
function multiline(code: number, lines: string[]): ClientAction {
  const data = lines.map((line, i) => `${code}${i === lines.length - 1 ? ' ' : '-'}${line}\r\n`).join('')
  return { type: 'reply', data }
}
