/**
 * The last line the proxy sends before it closes a connection it will not (or no longer) serve:
 * too many connections, too much input before login, no command in time. Each protocol's own
 * form, so a client reports it as "try later" rather than as a broken server.
 *
 * Owns: the refusal lines. Must not: decide when to refuse (proxy/admission.ts does).
 */

export type RefusalProtocol = 'imap' | 'pop3' | 'smtp'

/**
 * - busy: the proxy holds as many connections as it may (max_connections)
 * - source-busy: this client address holds as many as it may (max_connections_per_source)
 * - budget: pre-auth connections together hold as much unauthenticated input as they may
 * - too-much-input: this connection sent more before login than any client needs
 * - idle: no command within first_command_timeout_sec of the greeting
 */
export type RefusalReason = 'busy' | 'source-busy' | 'budget' | 'too-much-input' | 'idle'

const TEXT: Record<RefusalReason, string> = {
  busy: 'Too many connections, try again later',
  'source-busy': 'Too many connections from your address, try again later',
  budget: 'Server busy, try again later',
  'too-much-input': 'Too much input before login',
  idle: 'No command received in time',
}

/** A "try later" refusal: the client did nothing wrong itself. */
const TEMPORARY = new Set<RefusalReason>(['busy', 'source-busy', 'budget'])

/** The refusal line, CRLF included. */
export function refusalLine(protocol: RefusalProtocol, reason: RefusalReason, hostname: string): string {
  const text = TEXT[reason]
  const temporary = TEMPORARY.has(reason)
  switch (protocol) {
    // RFC 9051 §7.1.5: BYE, then the server closes; RFC 5530 §3: UNAVAILABLE, try again later.
    case 'imap':
      return `* BYE ${temporary ? '[UNAVAILABLE] ' : ''}${text}\r\n`
    // RFC 3206 §4: SYS/TEMP, a temporary problem of the server.
    case 'pop3':
      return `-ERR ${temporary ? '[SYS/TEMP] ' : ''}${text}\r\n`
    // RFC 5321 §3.8 / §4.2.2: 421 closes the channel; RFC 3463 §3.5/§3.8: 4.4.2 a timed-out
    // connection, 4.7.0 a policy refusal (as 454 4.7.0 for a login that cannot be served now).
    case 'smtp':
      return `421 ${reason === 'idle' ? '4.4.2' : '4.7.0'} ${hostname} ${text}\r\n`
  }
}
