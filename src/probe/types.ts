/**
 * Shapes of `mailkey test` results (also its --json output).
 *
 * Owns: the report shapes. Must not: do anything.
 */
import type { FailureKind, Protocol } from '../upstream/types.js'

export type { Protocol }
export const PROTOCOLS: readonly Protocol[] = ['imap', 'pop', 'smtp']

export interface ProtocolReport {
  /** a mail server, or Microsoft Graph (submission, issue 16) */
  protocol: Protocol | 'graph'
  /** the server URL tested (imaps://host:993 ...) */
  server: string
  ok: boolean
  mechanism?: string
  /** the steps that succeeded, in order */
  steps: string[]
  /** IMAP: messages in INBOX; POP3: messages in the maildrop */
  messages?: number
  /** the first attempt was refused and a force-refreshed token was tried */
  retriedWithFreshToken: boolean
  error?: { stage?: string; message: string; kind: FailureKind; cause: string; fix: string }
}

export interface TestReport {
  account: string
  /** the mailbox named in SASL (may differ from the signed-in account: shared mailboxes) */
  mailbox: string
  signedInAs?: string
  warnings: string[]
  results: ProtocolReport[]
  ok: boolean
}
