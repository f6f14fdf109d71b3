/**
 * The IMAP pre-auth session of `mailkey proxy` (RFC 9051 / RFC 3501): talks to the client until it
 * logs in with LOGIN (quoted strings and literals, RFC 7888 LITERAL+), AUTHENTICATE PLAIN
 * (RFC 4616, with and without RFC 4959 SASL-IR) or AUTHENTICATE LOGIN, or passes a client's own
 * AUTHENTICATE XOAUTH2/OAUTHBEARER through (shared/sasl-exchange.ts); answers CAPABILITY, NOOP,
 * ID (RFC 2971), STARTTLS and LOGOUT itself. Then the proxy splices.
 *
 * Owns: pre-auth IMAP framing and replies. Must not: open sockets or know about OAuth.
 */
import { Secret } from '../../core/secret.js'
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
  resolveLimits,
  type ClientAction,
  type LoginOutcome,
  type LoginResult,
  type PreAuthSession,
  type SessionLimits,
  type SessionOptions,
} from '../shared/session.js'

type Part = { text: string } | { literal: Buffer }

interface PendingLogin {
  tag: string
}

interface SaslState {
  tag: string
  exchange: SaslExchange
}

export function createImapSession(opts: SessionOptions): PreAuthSession {
  const limits: SessionLimits = resolveLimits(opts.limits)
  let secure = opts.secure
  let buf: Buffer = Buffer.alloc(0)
  /** the command being assembled: text and literal parts */
  let parts: Part[] = []
  let partsBytes = 0
  /** bytes still expected for the current literal */
  let literalLeft = 0
  let literalChunks: Buffer[] = []
  let sasl: SaslState | undefined
  let pending: PendingLogin | undefined
  let commands = 0
  let failures = 0
  let closed = false

  const caps = (): string => {
    const c = ['IMAP4rev1', 'LITERAL+', 'SASL-IR', 'ID', 'ENABLE']
    if (opts.starttlsAvailable && !secure) c.push('STARTTLS')
    // RFC 9051 §6.2.3 / RFC 3501 §6.2.3: no plain-text login without TLS where TLS is required,
    // and no AUTH= either (RFC 9051 §7.2.2: mechanisms are advertised only where they may be used).
    if (opts.requireTls && !secure) c.push('LOGINDISABLED')
    else c.push(...offeredSaslMechanisms(opts.oauthPassthrough).map((m) => `AUTH=${m}`))
    return c.join(' ')
  }
  const reply = (data: string): ClientAction => ({ type: 'reply', data: data + '\r\n' })
  const bye = (text: string): ClientAction[] => {
    closed = true
    // nothing read so far is needed any more: do not keep it while the socket lingers
    buf = Buffer.alloc(0)
    parts = []
    literalChunks = []
    return [{ type: 'close', data: `* BYE ${text}\r\n` }]
  }

  function handleCommand(cmdParts: Part[]): ClientAction[] {
    commands++
    const first = cmdParts[0]
    const head = first && 'text' in first ? first.text : ''
    const m = /^([^\s(){%*"\\\]]+) ([A-Za-z]+)(?: (.*))?$/s.exec(head)
    if (!m) {
      const tag = /^(\S+)/.exec(head)?.[1] ?? '*'
      return [reply(`${tag} BAD Invalid command syntax`)]
    }
    const tag = m[1] as string
    const verb = (m[2] as string).toUpperCase()
    const restParts: Part[] = [{ text: m[3] ?? '' }, ...cmdParts.slice(1)]
    if (commands > limits.maxCommands)
      return [reply(`${tag} BAD Too many commands before login`), ...bye('Too many commands')]
    switch (verb) {
      case 'CAPABILITY':
        return [reply(`* CAPABILITY ${caps()}`), reply(`${tag} OK CAPABILITY completed`)]
      case 'NOOP':
        return [reply(`${tag} OK NOOP completed`)]
      case 'ID':
        // RFC 2971 §3.1: the server may answer NIL.
        return [reply('* ID NIL'), reply(`${tag} OK ID completed`)]
      case 'LOGOUT':
        closed = true
        return [{ type: 'close', data: `* BYE Logging out\r\n${tag} OK LOGOUT completed\r\n` }]
      case 'STARTTLS':
        if (secure || !opts.starttlsAvailable) return [reply(`${tag} BAD STARTTLS not available`)]
        // RFC 9051 §6.2.1: after OK the TLS negotiation begins; nothing before it is trusted.
        buf = Buffer.alloc(0)
        secure = true
        return [reply(`${tag} OK Begin TLS negotiation now`), { type: 'starttls' }]
      case 'LOGIN': {
        if (opts.requireTls && !secure) return [reply(`${tag} NO [PRIVACYREQUIRED] Use STARTTLS or TLS first`)]
        const args = tokenize(restParts)
        if (!args || args.length !== 2) return [reply(`${tag} BAD LOGIN needs a user name and a password`)]
        const [user, pass] = args as [Buffer, Buffer]
        pending = { tag }
        return [{ type: 'login', username: user.toString('utf8'), password: new Secret(pass.toString('utf8')) }]
      }
      case 'AUTHENTICATE': {
        if (opts.requireTls && !secure) return [reply(`${tag} NO [PRIVACYREQUIRED] Use STARTTLS or TLS first`)]
        const args = tokenize(restParts)
        if (!args || args.length < 1 || args.length > 2) return [reply(`${tag} BAD AUTHENTICATE needs a mechanism`)]
        const mech = clientSaslMechanism((args[0] as Buffer).toString('latin1'), opts.oauthPassthrough)
        if (!mech) return [reply(`${tag} NO [CANNOT] Unsupported authentication mechanism`)]
        // RFC 4959 §3: the initial response is the second argument ("=" for an empty one).
        return saslStep(tag, saslStart(mech, args[1]?.toString('latin1')))
      }
      case 'SELECT':
      case 'EXAMINE':
      case 'LIST':
      case 'LSUB':
      case 'STATUS':
      case 'FETCH':
      case 'STORE':
      case 'SEARCH':
      case 'APPEND':
      case 'CREATE':
      case 'DELETE':
      case 'RENAME':
      case 'SUBSCRIBE':
      case 'UNSUBSCRIBE':
      case 'UID':
      case 'CLOSE':
      case 'EXPUNGE':
      case 'IDLE':
      case 'ENABLE':
      case 'NAMESPACE':
      case 'CHECK':
      case 'COPY':
      case 'MOVE':
        return [reply(`${tag} BAD Log in first`)]
      default:
        return [reply(`${tag} BAD Unknown command`)]
    }
  }

  /** A SASL client response line (RFC 9051 §6.2.2): "*" cancels, "=" is an empty response. */
  function saslResponse(line: string): ClientAction[] {
    const st = sasl
    if (!st) return []
    sasl = undefined
    return saslStep(st.tag, saslContinue(st.exchange, line))
  }

  function saslStep(tag: string, step: SaslStep): ClientAction[] {
    switch (step.kind) {
      case 'challenge':
        // RFC 9051 §7.5: a continuation request carries the base64 challenge.
        sasl = { tag, exchange: step.exchange }
        return [reply(`+ ${step.text}`)]
      case 'done':
        pending = { tag }
        return [step.action]
      case 'fail':
        switch (step.why) {
          // RFC 9051 §6.2.2: a cancelled exchange is answered BAD.
          case 'cancelled':
            return [reply(`${tag} BAD AUTHENTICATE cancelled`)]
          case 'undecodable':
            return [reply(`${tag} BAD Invalid SASL response`)]
          case 'authzid':
            return [reply(`${tag} NO [AUTHORIZATIONFAILED] Authorization identity must be empty or the user name`)]
          case 'no-user':
            return [reply(`${tag} NO [AUTHENTICATIONFAILED] The OAuth response names no user`)]
        }
    }
  }

  /** Frame client bytes into lines and literals (RFC 9051 §4.3, RFC 7888). */
  function pump(): ClientAction[] {
    const out: ClientAction[] = []
    while (!closed && !pending) {
      if (literalLeft > 0) {
        if (buf.length === 0) break
        const take = buf.subarray(0, literalLeft)
        literalChunks.push(take)
        literalLeft -= take.length
        // RFC 9051 §4.3: a literal is part of its command; its bytes count against the command's limit
        partsBytes += take.length
        buf = buf.subarray(take.length)
        if (literalLeft === 0) {
          parts.push({ literal: Buffer.concat(literalChunks) })
          literalChunks = []
        }
        continue
      }
      const nl = buf.indexOf(0x0a)
      if (nl < 0) {
        if (buf.length >= limits.maxLineBytes) {
          out.push(reply('* BAD Line too long'), ...bye('Line too long'))
        } else if (partsBytes + buf.length > limits.maxCommandBytes) {
          out.push(reply('* BAD Command too long'), ...bye('Command too long'))
        }
        break
      }
      if (nl >= limits.maxLineBytes) {
        out.push(reply('* BAD Line too long'), ...bye('Line too long'))
        break
      }
      const line = buf.subarray(0, nl).toString('utf8').replace(/\r$/, '')
      buf = buf.subarray(nl + 1)
      partsBytes += nl + 1
      if (partsBytes > limits.maxCommandBytes) {
        out.push(reply('* BAD Command too long'), ...bye('Command too long'))
        break
      }
      if (/[\x00]/.test(line)) {
        out.push(reply('* BAD NUL in command'), ...bye('Protocol error'))
        break
      }
      if (sasl) {
        out.push(...saslResponse(line.trim()))
        parts = []
        partsBytes = 0
        continue
      }
      const lit = /\{(\d{1,10})(\+?)\}$/.exec(line)
      if (lit) {
        const n = Number(lit[1])
        const head = line.slice(0, lit.index)
        if (n > limits.maxLiteralBytes || partsBytes + n > limits.maxCommandBytes) {
          // RFC 7888 §4: a non-synchronizing literal we refuse must still be skipped; close instead.
          // A chain of literals is refused as soon as the next one would take the command past its
          // limit, before its bytes arrive (issue 11: 1,600 chained 8 KiB literals in one LOGIN).
          const tag = /^(\S+)/.exec(parts.length ? ((parts[0] as { text?: string }).text ?? '') : head)?.[1] ?? '*'
          const what = n > limits.maxLiteralBytes ? 'Literal too large' : 'Command too long'
          out.push(reply(`${tag} BAD ${what}`), ...bye(what))
          break
        }
        parts.push({ text: head })
        literalLeft = n
        if (lit[2] !== '+') out.push(reply('+ Ready for literal data'))
        if (n === 0) {
          parts.push({ literal: Buffer.alloc(0) })
          literalLeft = 0
        }
        continue
      }
      parts.push({ text: line })
      const cmd = parts
      parts = []
      partsBytes = 0
      out.push(...handleCommand(cmd))
    }
    return out
  }

  return {
    start(): ClientAction[] {
      return [reply(`* OK [CAPABILITY ${caps()}] ${opts.hostname} mailkey IMAP proxy ready`)]
    },
    feed(data: Buffer): ClientAction[] {
      if (closed) return []
      buf = buf.length ? Buffer.concat([buf, data]) : data
      return pump()
    },
    loginResult(outcome: LoginOutcome, info?: { text?: string }): LoginResult {
      const p = pending
      if (!p) return { actions: [], done: false }
      pending = undefined
      if (outcome === 'ok') {
        closed = true
        return {
          actions: [reply(`${p.tag} OK Logged in`)],
          done: true,
          ...(buf.length ? { leftover: Buffer.from(buf) } : {}),
        }
      }
      const text = info?.text ? ` ${replyText(info.text, '')}`.trimEnd() : ''
      const line = {
        'bad-credentials': `${p.tag} NO [AUTHENTICATIONFAILED] Invalid credentials`,
        reauth: `${p.tag} NO [AUTHENTICATIONFAILED] This account needs a new sign-in: run "mailkey status"${text}`,
        transient: `${p.tag} NO [UNAVAILABLE] Temporary failure, try again later${text}`,
        config: `${p.tag} NO [CONTACTADMIN] The mailkey proxy cannot log in to this account: see "mailkey status"${text}`,
      }[outcome]
      const actions: ClientAction[] = [reply(line)]
      if (++failures >= limits.maxFailedLogins) actions.push(...bye('Too many failed logins'))
      else actions.push(...pump())
      return { actions, done: false }
    },
  }
}

/**
 * Split command arguments into astrings (RFC 9051 §9: atom / quoted / literal). Returns undefined
 * on a syntax error.
 */
export function tokenize(parts: Part[]): Buffer[] | undefined {
  const out: Buffer[] = []
  for (const p of parts) {
    if ('literal' in p) {
      out.push(p.literal)
      continue
    }
    const s = p.text
    let i = 0
    while (i < s.length) {
      const c = s[i]
      if (c === ' ') {
        i++
        continue
      }
      if (c === '"') {
        let v = ''
        i++
        for (;;) {
          if (i >= s.length) return undefined
          const ch = s[i] as string
          if (ch === '\\') {
            const nx = s[i + 1]
            if (nx !== '"' && nx !== '\\') return undefined // RFC 9051 §4.3: only \" and \\ are quoted-specials
            v += nx
            i += 2
            continue
          }
          if (ch === '"') {
            i++
            break
          }
          v += ch
          i++
        }
        out.push(Buffer.from(v, 'utf8'))
        continue
      }
      let j = i
      while (j < s.length && s[j] !== ' ') j++
      const atom = s.slice(i, j)
      if (/[(){%*"\\]/.test(atom)) return undefined
      out.push(Buffer.from(atom, 'utf8'))
      i = j
    }
  }
  return out
}
