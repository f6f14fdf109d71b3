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
import { reply } from './command.js'
import { LineReader } from './line-reader.js'
import {
  resolveLimits,
  type ClientAction,
  type LoginOutcome,
  type LoginResult,
  type PreAuthSession,
  type SessionLimits,
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

/** Everything one line session knows, in one place. */
interface LineState {
  readonly dialect: LineDialect
  readonly limits: SessionLimits
  readonly reader: LineReader
  /**
   * Input buffered while a login is pending is forwarded upstream after 'ok'. The proxy should
   * stop feeding meanwhile; this bounds memory if it does not: no more than a client could send
   * before login anyway.
   */
  readonly maxPendingBytes: number
  phase: Phase
  /** command lines read so far */
  commands: number
  /** failed logins so far */
  failures: number
}

export function createLineSession(opts: SessionOptions, dialect: LineDialect): PreAuthSession {
  const limits = resolveLimits(opts.limits)
  const st: LineState = {
    dialect,
    limits,
    reader: new LineReader(limits.maxLineBytes),
    maxPendingBytes: limits.maxLineBytes * limits.maxCommands,
    phase: 'reading',
    commands: 0,
    failures: 0,
  }
  const ctl = lineControl(st)
  return {
    start: () => dialect.greeting(),
    feed: (data) => feed(st, ctl, data),
    loginResult: (outcome, info) => loginResult(st, ctl, outcome, info),
  }
}

/** Write `line` and stop: nothing more is read, and unread input is dropped. */
function close(st: LineState, out: ClientAction[], line: string): void {
  out.push({ type: 'close', data: `${line}\r\n` })
  st.phase = 'closed'
  st.reader.clear()
}

function lineControl(st: LineState): LineControl {
  return {
    login(out, username, password) {
      out.push({ type: 'login', username, password })
      st.phase = 'login-pending'
    },
    handOver(out, action) {
      out.push(action)
      st.phase = 'login-pending'
    },
    close: (out, line) => close(st, out, line),
    clearInput: () => st.reader.clear(),
  }
}

/** Read and answer buffered lines until input runs out or the session stops reading. */
function run(st: LineState, ctl: LineControl, out: ClientAction[]): ClientAction[] {
  while (st.phase === 'reading') {
    const r = st.reader.next()
    if (r.kind === 'partial') break
    if (r.kind === 'too-long') {
      // Bounded framing: an overlong line is answered and the connection closed; nothing after
      // it can be trusted to start on a line boundary.
      close(st, out, st.dialect.closing.lineTooLong)
      break
    }
    st.commands += 1
    if (st.commands > st.limits.maxCommands) {
      close(st, out, st.dialect.closing.tooManyCommands)
      break
    }
    st.dialect.onLine(r.line, out, ctl)
  }
  return out
}

function feed(st: LineState, ctl: LineControl, data: Buffer): ClientAction[] {
  if (st.phase === 'closed') return []
  if (st.phase === 'done') throw new Error(`${st.dialect.name} session is over: splice instead of feeding it`)
  st.reader.push(data)
  if (st.phase === 'login-pending') {
    if (st.reader.size > st.maxPendingBytes) {
      const out: ClientAction[] = []
      close(st, out, st.dialect.closing.pendingOverflow)
      return out
    }
    return []
  }
  return run(st, ctl, [])
}

function loginResult(
  st: LineState,
  ctl: LineControl,
  outcome: LoginOutcome,
  info: { text?: string } | undefined,
): LoginResult {
  if (st.phase === 'closed') return { actions: [], done: false }
  if (st.phase !== 'login-pending') throw new Error(`${st.dialect.name} session has no login pending`)
  if (outcome === 'ok') {
    st.phase = 'done'
    // Everything after the login (pipelined commands) belongs to the upstream.
    const leftover = st.reader.drain()
    return {
      actions: [reply(st.dialect.okReply(info?.text))],
      done: true,
      ...(leftover.length > 0 ? { leftover } : {}),
    }
  }
  return loginFailed(st, ctl, outcome, info?.text)
}

function loginFailed(
  st: LineState,
  ctl: LineControl,
  outcome: Exclude<LoginOutcome, 'ok'>,
  text: string | undefined,
): LoginResult {
  st.failures += 1
  const failed = st.dialect.failureReply(outcome, text)
  st.dialect.resetAfterFailure()
  st.phase = 'reading'
  const out: ClientAction[] = []
  if (st.failures >= st.limits.maxFailedLogins) {
    const lines = st.dialect.closing.tooManyFailures(failed)
    for (const l of lines.slice(0, -1)) out.push(reply(l))
    close(st, out, lines.at(-1) as string)
    return { actions: out, done: false }
  }
  out.push(reply(failed))
  // Commands the client sent behind the failed login are answered now, in order.
  return { actions: run(st, ctl, out), done: false }
}
