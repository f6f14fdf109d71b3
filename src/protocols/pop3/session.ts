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
 * Owns: the POP3 AUTHORIZATION state up to the login verdict. Must not: open sockets, check
 * passwords, talk to the broker, log, or put a password (or a line that may hold one) into a reply.
 */
import { Secret } from '../../core/secret.js'
import { commandText } from '../shared/line-reader.js'
import { createLineSession, type LineControl } from '../shared/line-session.js'
import {
  clientSaslMechanism,
  offeredSaslMechanisms,
  saslContinue,
  saslStart,
  type SaslExchange,
  type SaslStep,
} from '../shared/sasl-exchange.js'
import {
  replyText,
  type ClientAction,
  type LoginOutcome,
  type PreAuthSession,
  type SessionOptions,
} from '../shared/session.js'

export const POP3_GREETING = '+OK mailkey POP3 proxy ready'

type State =
  /** AUTHORIZATION state; `user` is set right after an accepted USER (RFC 1939 §7) */
  | { kind: 'command'; user?: string }
  /** a SASL exchange awaits the client's next line (RFC 5034 §4) */
  | { kind: 'sasl'; exchange: SaslExchange }

type Handler = (arg: string | undefined, out: ClientAction[], user: string | undefined, ctl: LineControl) => void

// RFC 1939 §5: transaction-state commands. Before login they are out of sequence, not unknown.
const TRANSACTION_VERBS = ['STAT', 'LIST', 'RETR', 'DELE', 'NOOP', 'RSET', 'TOP', 'UIDL', 'LAST']

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
  let secure = opts.secure
  let state: State = { kind: 'command' }

  /**
   * SASL mechanisms offered to clients: PLAIN and LOGIN carry the local password; XOAUTH2 and
   * OAUTHBEARER (a client with its own token) only where the listener passes them through.
   */
  const mechanisms = offeredSaslMechanisms(opts.oauthPassthrough)
  const tlsRequired = (): boolean => opts.requireTls && !secure
  const stlsOffered = (): boolean => opts.starttlsAvailable && !secure

  const handlers = new Map<string, Handler>([
    [
      'CAPA',
      (_arg, out) => {
        // RFC 2449 §5: one capability per line, ended by a lone ".".
        const caps: string[] = []
        // RFC 2595 §4 / RFC 2449 §6.3, §6.8: neither USER nor SASL before STLS where TLS must come
        // first, so a client never offers a credential in clear (the commands are refused anyway).
        if (!tlsRequired()) caps.push('USER', `SASL ${mechanisms.join(' ')}`)
        // RFC 2449 §6.4 / §8 and RFC 3206: these two license the bracketed codes in our -ERR replies.
        caps.push('RESP-CODES', 'AUTH-RESP-CODE')
        // RFC 2595 §4: STLS only before TLS is active (and so never again after it).
        if (stlsOffered()) caps.push('STLS')
        caps.push('IMPLEMENTATION mailkey')
        out.push(reply(`+OK Capability list follows\r\n${caps.join('\r\n')}\r\n.`))
      },
    ],
    [
      'USER',
      (arg, out) => {
        if (tlsRequired()) return void out.push(tlsRequiredReply())
        const user = arg?.trim() ?? ''
        if (user.length === 0) return void out.push(reply('-ERR missing user name'))
        if (user.includes('\t')) return void out.push(reply('-ERR invalid user name'))
        // RFC 1939 §7: the mailbox cannot be checked before PASS; any name is accepted here.
        state = { kind: 'command', user }
        out.push(reply('+OK send PASS'))
      },
    ],
    [
      'PASS',
      (arg, out, user, ctl) => {
        if (tlsRequired()) return void out.push(tlsRequiredReply())
        // RFC 1939 §7: PASS only immediately after a successful USER.
        if (user === undefined) return void out.push(reply('-ERR send USER first'))
        // RFC 1939 §7 (PASS, "Discussion"): the whole rest of the line is the password, spaces
        // included, so it is taken verbatim after the single space that ends the keyword.
        if (arg === undefined || arg.length === 0) return void out.push(reply('-ERR missing password'))
        ctl.login(out, user, new Secret(arg))
      },
    ],
    [
      'AUTH',
      (arg, out, _user, ctl) => {
        if (tlsRequired()) return void out.push(tlsRequiredReply())
        const parts = (arg ?? '').split(' ').filter((p) => p.length > 0)
        // Not in RFC 5034 (nor RFC 1734): a bare AUTH lists the mechanisms, "+OK" then one per line
        // and ".", an old convention that Outlook and other clients still rely on.
        if (parts.length === 0) return void out.push(reply(`+OK\r\n${mechanisms.join('\r\n')}\r\n.`))
        if (parts.length > 2) return void out.push(reply('-ERR syntax: AUTH mechanism [initial-response]'))
        const [name = '', ir] = parts
        const mech = clientSaslMechanism(name, opts.oauthPassthrough)
        // RFC 5034 §4: a mechanism the server does not support fails the AUTH command.
        if (!mech) return void out.push(reply('-ERR Unsupported mechanism'))
        onSaslStep(saslStart(mech, ir), out, ctl)
      },
    ],
    [
      'STLS',
      (_arg, out, _user, ctl) => {
        // RFC 2595 §4: STLS is refused once TLS is active.
        if (secure) return void out.push(reply('-ERR TLS already active'))
        if (!opts.starttlsAvailable) return void out.push(reply('-ERR STLS not available'))
        out.push(reply('+OK Begin TLS negotiation'), { type: 'starttls' })
        // RFC 2595 §4 (and RFC 3207 §4.2 for SMTP): after TLS, forget what the client said in the
        // clear (the USER is already gone: any command clears it), and discard bytes that followed
        // STLS in the clear: they would otherwise be read as if they had come over TLS.
        ctl.clearInput()
        secure = true
        state = { kind: 'command' }
      },
    ],
    [
      'QUIT',
      (_arg, out, _user, ctl) => {
        // RFC 1939 §4: QUIT in the AUTHORIZATION state ends the session without an UPDATE state.
        ctl.close(out, '+OK bye')
      },
    ],
    [
      'APOP',
      (_arg, out) => {
        // RFC 1939 §7: APOP needs a timestamp in the greeting; we send none.
        out.push(reply('-ERR APOP not supported'))
      },
    ],
    ...TRANSACTION_VERBS.map((verb): [string, Handler] => [
      verb,
      (_arg, out) => {
        out.push(reply('-ERR not logged in yet'))
      },
    ]),
  ])

  function tlsRequiredReply(): ClientAction {
    // RFC 3206 §5: [AUTH] covers "an attempt to authenticate in violation of policy".
    return reply(
      opts.starttlsAvailable
        ? '-ERR [AUTH] TLS required: send STLS first'
        : '-ERR [AUTH] TLS required: connect with TLS',
    )
  }

  function onSaslStep(step: SaslStep, out: ClientAction[], ctl: LineControl): void {
    switch (step.kind) {
      case 'challenge':
        // RFC 5034 §4: a continuation is "+ " and the base64 challenge.
        state = { kind: 'sasl', exchange: step.exchange }
        return void out.push(reply(`+ ${step.text}`))
      case 'done':
        state = { kind: 'command' }
        return ctl.handOver(out, step.action)
      case 'fail':
        state = { kind: 'command' }
        switch (step.why) {
          // RFC 5034 §4: a lone "*" cancels the exchange and the server answers -ERR.
          case 'cancelled':
            return void out.push(reply('-ERR authentication cancelled'))
          // RFC 5034 §4: a response the server cannot decode fails the AUTH command with -ERR.
          case 'undecodable':
            return void out.push(reply('-ERR invalid SASL response'))
          // RFC 4616 §2: we only log users in as themselves.
          case 'authzid':
            return void out.push(reply('-ERR [AUTH] Authorization identity must be empty or the user name'))
          case 'no-user':
            return void out.push(reply('-ERR [AUTH] The OAuth response names no user'))
        }
    }
  }

  function onLine(line: Buffer, out: ClientAction[], ctl: LineControl): void {
    const text = commandText(line)
    const current = state
    if (current.kind === 'sasl') {
      state = { kind: 'command' }
      if (text === undefined) return void out.push(reply('-ERR invalid SASL response'))
      return onSaslStep(saslContinue(current.exchange, text), out, ctl)
    }
    // RFC 1939 §7: PASS must come immediately after USER, so any other line forgets the USER.
    const user = current.kind === 'command' ? current.user : undefined
    state = { kind: 'command' }
    // NUL, bare CR, other controls, invalid UTF-8: refused without echoing anything.
    if (text === undefined) return void out.push(reply('-ERR invalid characters in command'))
    // RFC 1939 §3: keyword, then arguments each after a single space; keywords are case-insensitive.
    const space = text.indexOf(' ')
    const verb = (space < 0 ? text : text.slice(0, space)).toUpperCase()
    const arg = space < 0 ? undefined : text.slice(space + 1)
    const handler = handlers.get(verb)
    if (!handler) return void out.push(reply(verb.length === 0 ? '-ERR empty command' : '-ERR unknown command'))
    handler(arg, out, user, ctl)
  }

  return createLineSession(opts, {
    name: 'POP3',
    // RFC 1939 §4: the greeting; no APOP timestamp, since APOP is not offered.
    greeting: () => [reply(POP3_GREETING)],
    onLine,
    okReply: (text) => `+OK ${sanitizeText(text, 'Logged in.')}`,
    failureReply,
    resetAfterFailure: () => {
      state = { kind: 'command' }
    },
    closing: {
      lineTooLong: '-ERR line too long',
      tooManyCommands: '-ERR too many commands before login',
      pendingOverflow: '-ERR too much input while logging in',
      // the failure reply itself is the last word
      tooManyFailures: (failed) => [failed],
    },
  })
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

function reply(line: string): ClientAction {
  return { type: 'reply', data: `${line}\r\n` }
}

/** The proxy's text for a reply, never starting with "[" (it would pose as a response code, RFC 2449 §8). */
function sanitizeText(text: string | undefined, fallback: string): string {
  return replyText(text?.replace(/^[\s\x00-\x1f\x7f]*\[+/, ''), fallback)
}
