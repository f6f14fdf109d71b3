/**
 * The part the POP3 and SMTP pre-auth sessions share: line framing with bounded lines, the count
 * of commands and failed logins, holding input while a login is pending (and handing it back as
 * `leftover` for the upstream on success), and the phases reading -> login pending -> done or
 * closed. A dialect (pop3/session.ts, smtp/session.ts) answers each command line and says what
 * its replies look like; it never sees raw bytes or counts anything.
 *
 * Owns: the PreAuthSession contract for line protocols. Must not: know a protocol's replies.
 */
import type { Secret } from '../../core/secret.js'
import { LineReader } from './line-reader.js'
import {
  resolveLimits,
  type ClientAction,
  type LoginOutcome,
  type LoginResult,
  type PreAuthSession,
  type SessionOptions,
} from './session.js'

/** What a dialect can do to the session from inside a command. */
export interface LineControl {
  /** a local login is complete: the proxy checks it (the session stops reading until loginResult) */
  login(out: ClientAction[], username: string, password: Secret): void
  /** a `login` or `passthrough` action from the shared SASL exchange */
  handOver(out: ClientAction[], action: Extract<ClientAction, { type: 'login' | 'passthrough' }>): void
  /** write `line` and close the connection */
  close(out: ClientAction[], line: string): void
  /** forget unread input (STARTTLS: bytes that followed it in the clear are not trusted) */
  clearInput(): void
}

export interface LineDialect {
  /** 'POP3' | 'SMTP', for error messages about misuse */
  name: string
  greeting(): ClientAction[]
  /** answer one command line (no CRLF) */
  onLine(line: Buffer, out: ClientAction[], ctl: LineControl): void
  /** the reply to a successful login */
  okReply(text: string | undefined): string
  /** the reply to a failed login (STYLE.md §5 wire mapping) */
  failureReply(outcome: Exclude<LoginOutcome, 'ok'>, text: string | undefined): string
  /** a failed login: the dialect forgets any half-done exchange */
  resetAfterFailure(): void
  /** what to send when closing for each reason; `failed` is the failure reply of the last login */
  closing: {
    lineTooLong: string
    tooManyCommands: string
    pendingOverflow: string
    /** the lines to send before closing after too many failed logins */
    tooManyFailures(failed: string): string[]
  }
}

type Phase = 'reading' | 'login-pending' | 'done' | 'closed'

export function createLineSession(opts: SessionOptions, dialect: LineDialect): PreAuthSession {
  const limits = resolveLimits(opts.limits)
  const reader = new LineReader(limits.maxLineBytes)
  // Input buffered while a login is pending is forwarded upstream after 'ok'. The proxy should
  // stop feeding meanwhile; this bounds memory if it does not: no more than a client could send
  // before login anyway.
  const maxPendingBytes = limits.maxLineBytes * limits.maxCommands
  let phase: Phase = 'reading'
  let commands = 0
  let failures = 0

  const reply = (line: string): ClientAction => ({ type: 'reply', data: `${line}\r\n` })
  const close = (out: ClientAction[], line: string): void => {
    out.push({ type: 'close', data: `${line}\r\n` })
    phase = 'closed'
    reader.clear()
  }
  const ctl: LineControl = {
    login(out, username, password) {
      out.push({ type: 'login', username, password })
      phase = 'login-pending'
    },
    handOver(out, action) {
      out.push(action)
      phase = 'login-pending'
    },
    close,
    clearInput: () => reader.clear(),
  }

  /** Read and answer buffered lines until input runs out or the session stops reading. */
  function run(out: ClientAction[]): ClientAction[] {
    while (phase === 'reading') {
      const r = reader.next()
      if (r.kind === 'partial') break
      if (r.kind === 'too-long') {
        // Bounded framing: an overlong line is answered and the connection closed; nothing after
        // it can be trusted to start on a line boundary.
        close(out, dialect.closing.lineTooLong)
        break
      }
      commands += 1
      if (commands > limits.maxCommands) {
        close(out, dialect.closing.tooManyCommands)
        break
      }
      dialect.onLine(r.line, out, ctl)
    }
    return out
  }

  return {
    start: () => dialect.greeting(),

    feed(data: Buffer): ClientAction[] {
      if (phase === 'closed') return []
      if (phase === 'done') throw new Error(`${dialect.name} session is over: splice instead of feeding it`)
      reader.push(data)
      if (phase === 'login-pending') {
        if (reader.size > maxPendingBytes) {
          const out: ClientAction[] = []
          close(out, dialect.closing.pendingOverflow)
          return out
        }
        return []
      }
      return run([])
    },

    loginResult(outcome: LoginOutcome, info?: { text?: string }): LoginResult {
      if (phase === 'closed') return { actions: [], done: false }
      if (phase !== 'login-pending') throw new Error(`${dialect.name} session has no login pending`)
      if (outcome === 'ok') {
        phase = 'done'
        // Everything after the login (pipelined commands) belongs to the upstream.
        const leftover = reader.drain()
        return {
          actions: [reply(dialect.okReply(info?.text))],
          done: true,
          ...(leftover.length > 0 ? { leftover } : {}),
        }
      }
      failures += 1
      const failed = dialect.failureReply(outcome, info?.text)
      dialect.resetAfterFailure()
      phase = 'reading'
      const out: ClientAction[] = []
      if (failures >= limits.maxFailedLogins) {
        const lines = dialect.closing.tooManyFailures(failed)
        for (const l of lines.slice(0, -1)) out.push(reply(l))
        close(out, lines.at(-1) as string)
        return { actions: out, done: false }
      }
      out.push(reply(failed))
      // Commands the client sent behind the failed login are answered now, in order.
      return { actions: run(out), done: false }
    },
  }
}
