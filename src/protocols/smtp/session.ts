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
 * Owns: the pre-auth SMTP dialogue up to the login verdict. Must not: open sockets, check
 * passwords, talk to the broker, log, or put a password (or a line that may hold one) into a reply.
 */
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

type State =
  | { kind: 'command' }
  /** a SASL exchange awaits the client's next line (RFC 4954 §4) */
  | { kind: 'sasl'; exchange: SaslExchange }

type Handler = (args: string | undefined, out: ClientAction[], ctl: LineControl) => void

// Commands of a mail transaction, and others a submission server keeps for authenticated users.
const AUTH_FIRST_VERBS = ['MAIL', 'RCPT', 'DATA', 'BDAT', 'VRFY', 'EXPN', 'ETRN']
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
  const host = opts.hostname
  let secure = opts.secure
  let state: State = { kind: 'command' }
  /** the greeting the client has given: RFC 4954 §3 makes AUTH an EHLO-only extension */
  let greeted: 'none' | 'helo' | 'ehlo' = 'none'

  const tlsRequired = (): boolean => opts.requireTls && !secure
  const starttlsOffered = (): boolean => opts.starttlsAvailable && !secure

  const handlers = new Map<string, Handler>([
    [
      'EHLO',
      (args, out) => {
        // RFC 5321 §4.1.1.1: EHLO takes a domain (or address literal); we do not check it further
        // (RFC 5321 §4.1.4: the server MUST NOT refuse a message because the name is wrong).
        if (args === undefined || args.trim().length === 0) return void out.push(reply('501 5.5.4 Syntax: EHLO domain'))
        greeted = 'ehlo'
        const lines = [host, '8BITMIME', 'ENHANCEDSTATUSCODES']
        // RFC 4954 §4 + RFC 3207 §4: no plain-text AUTH offered where TLS must come first.
        if (!tlsRequired()) lines.push(`AUTH ${offeredSaslMechanisms(opts.oauthPassthrough).join(' ')}`)
        // RFC 3207 §4.2: STARTTLS is not offered again once TLS is active.
        if (starttlsOffered()) lines.push('STARTTLS')
        out.push(multiline(250, lines))
      },
    ],
    [
      'HELO',
      (args, out) => {
        if (args === undefined || args.trim().length === 0) return void out.push(reply('501 5.5.4 Syntax: HELO domain'))
        greeted = 'helo'
        out.push(reply(`250 ${host}`))
      },
    ],
    [
      'AUTH',
      (args, out, ctl) => {
        if (tlsRequired()) {
          // RFC 3207 §4 when STARTTLS is on offer; otherwise RFC 4954 §6's "encryption required".
          return void out.push(
            reply(
              opts.starttlsAvailable
                ? '530 5.7.0 Must issue a STARTTLS command first'
                : '538 5.7.11 Encryption required for requested authentication mechanism',
            ),
          )
        }
        // RFC 4954 §3: AUTH is an EHLO keyword, so it is out of sequence before EHLO (or after HELO).
        if (greeted !== 'ehlo') return void out.push(reply('503 5.5.1 Send EHLO first'))
        const parts = (args ?? '').split(' ').filter((p) => p.length > 0)
        if (parts.length === 0 || parts.length > 2) {
          return void out.push(reply('501 5.5.4 Syntax: AUTH mechanism [initial-response]'))
        }
        const [name = '', ir] = parts
        const mech = clientSaslMechanism(name, opts.oauthPassthrough)
        // RFC 4954 §4: a mechanism the server does not support fails with 504 5.5.4.
        if (!mech) return void out.push(reply('504 5.5.4 Unrecognized authentication type'))
        onSaslStep(saslStart(mech, ir), out, ctl)
      },
    ],
    [
      'STARTTLS',
      (args, out, ctl) => {
        // RFC 3207 §4: STARTTLS takes no parameters.
        if (args !== undefined && args.trim().length > 0) return void out.push(reply('501 5.5.4 Syntax: STARTTLS'))
        if (secure) return void out.push(reply('503 5.5.1 TLS already active'))
        if (!opts.starttlsAvailable) return void out.push(reply('502 5.5.1 STARTTLS not supported'))
        out.push(reply('220 2.0.0 Ready to start TLS'), { type: 'starttls' })
        // RFC 3207 §4.2: the server MUST discard any knowledge obtained from the client (the EHLO
        // argument included) before TLS. Bytes that followed STARTTLS in the clear are dropped too:
        // reading them as if they came over TLS is the command-injection hole (CVE-2011-0411).
        ctl.clearInput()
        secure = true
        greeted = 'none'
        state = { kind: 'command' }
      },
    ],
    [
      'RSET',
      (_args, out) => {
        // RFC 5321 §4.1.1.5: RSET does not undo EHLO; there is no transaction to abort yet.
        out.push(reply('250 2.0.0 OK'))
      },
    ],
    [
      'NOOP',
      (_args, out) => {
        out.push(reply('250 2.0.0 OK'))
      },
    ],
    [
      'HELP',
      (_args, out) => {
        out.push(reply('214 2.0.0 mailkey proxy: EHLO, AUTH PLAIN or LOGIN, then mail as usual'))
      },
    ],
    [
      'QUIT',
      (_args, out, ctl) => {
        // RFC 5321 §4.1.1.10: 221, then close.
        ctl.close(out, `221 2.0.0 ${host} closing connection`)
      },
    ],
    ...AUTH_FIRST_VERBS.map((verb): [string, Handler] => [
      verb,
      (_args, out) => {
        // RFC 4954 §6: 530 5.7.0 for commands refused until the client has authenticated.
        out.push(reply('530 5.7.0 Authentication required'))
      },
    ]),
  ])

  function onSaslStep(step: SaslStep, out: ClientAction[], ctl: LineControl): void {
    switch (step.kind) {
      case 'challenge':
        // RFC 4954 §4: a continuation is "334 " and the base64 challenge.
        state = { kind: 'sasl', exchange: step.exchange }
        return void out.push(reply(`334 ${step.text}`))
      case 'done':
        state = { kind: 'command' }
        return ctl.handOver(out, step.action)
      case 'fail':
        state = { kind: 'command' }
        switch (step.why) {
          // RFC 4954 §4: "*" cancels the exchange; the server answers 501.
          case 'cancelled':
            return void out.push(reply('501 5.0.0 Authentication cancelled'))
          // RFC 4954 §4: a response that cannot be base64-decoded fails AUTH with 501 5.5.2. A
          // response that decodes but is malformed for its mechanism gets the same reply.
          case 'undecodable':
            return void out.push(undecodable())
          // RFC 4616 §2: we only log users in as themselves. Not counted as a failed login: no
          // password was checked.
          case 'authzid':
            return void out.push(reply('535 5.7.8 Authorization identity must be empty or the user name'))
          case 'no-user':
            return void out.push(reply('535 5.7.8 The OAuth response names no user'))
        }
    }
  }

  const undecodable = (): ClientAction => reply('501 5.5.2 Cannot decode response')

  function onLine(line: Buffer, out: ClientAction[], ctl: LineControl): void {
    const text = commandText(line)
    const current = state
    if (current.kind === 'sasl') {
      state = { kind: 'command' }
      if (text === undefined) return void out.push(undecodable())
      return onSaslStep(saslContinue(current.exchange, text), out, ctl)
    }
    // NUL, bare CR, other controls, invalid UTF-8: refused without echoing anything.
    if (text === undefined) return void out.push(reply('500 5.5.2 Invalid characters in command'))
    // RFC 5321 §2.4: verbs are case-insensitive; the verb ends at the first space.
    const space = text.indexOf(' ')
    const verb = (space < 0 ? text : text.slice(0, space)).toUpperCase()
    const args = space < 0 ? undefined : text.slice(space + 1)
    const handler = handlers.get(verb)
    // RFC 5321 §4.2.4: 500 for a command the server does not recognise.
    if (!handler) return void out.push(reply('500 5.5.2 Command not recognized'))
    // RFC 3207 §4: with TLS required, every command but NOOP, EHLO, STARTTLS and QUIT gets 530.
    // Only when STARTTLS is on offer: without it, AUTH's own 538 says what is wrong.
    if (tlsRequired() && opts.starttlsAvailable && !ALLOWED_BEFORE_TLS.has(verb)) {
      return void out.push(reply('530 5.7.0 Must issue a STARTTLS command first'))
    }
    handler(args, out, ctl)
  }

  return createLineSession(opts, {
    name: 'SMTP',
    // RFC 5321 §4.2 / §3.1: the 220 greeting; "ESMTP" tells old clients to try EHLO.
    greeting: () => [reply(`220 ${host} ESMTP mailkey proxy ready`)],
    onLine,
    // Everything after the AUTH exchange (a pipelined MAIL FROM, RFC 4954 §4 allows it after an
    // initial response) is handed to the upstream as leftover by the line session.
    okReply: (text) => `235 2.7.0 ${replyText(text, 'Authentication successful')}`,
    failureReply,
    resetAfterFailure: () => {
      state = { kind: 'command' }
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
  })
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

function reply(line: string): ClientAction {
  return { type: 'reply', data: `${line}\r\n` }
}

/** RFC 5321 §4.2.1: every line but the last has "-" after the code. */
function multiline(code: number, lines: string[]): ClientAction {
  const data = lines.map((line, i) => `${code}${i === lines.length - 1 ? ' ' : '-'}${line}\r\n`).join('')
  return { type: 'reply', data }
}
