/**
 * The SASL exchange (sasl-exchange.ts) as the line dialects frame it, shared by POP3 and SMTP: a
 * challenge becomes a continuation line, a complete exchange goes to the proxy as its `login` or
 * `passthrough` action, and a failure gets the dialect's reply. The dialect keeps the exchange
 * that awaits the client's next line; these functions say which one that is.
 *
 * Owns: applying a SASL step to a line session. Must not: hold reply texts (the dialect passes its
 * wording), or put any part of a client response into a reply.
 */
import { reply } from './command.js'
import type { LineControl } from './line-session.js'
import { saslContinue, type SaslExchange, type SaslFailure, type SaslStep } from './sasl-exchange.js'
import type { ClientAction } from './session.js'

export interface SaslWording {
  /** what precedes a challenge: '+' (POP3, RFC 5034 §4) or '334' (SMTP, RFC 4954 §4) */
  continuation: string
  /** the reply to each way an exchange fails before a credential is checked */
  failures: Record<SaslFailure, string>
}

/** Answer one step; returns the exchange that now waits for the client's next line, if any. */
export function answerSaslStep(
  step: SaslStep,
  wording: SaslWording,
  out: ClientAction[],
  ctl: LineControl,
): SaslExchange | undefined {
  switch (step.kind) {
    case 'challenge':
      out.push(reply(`${wording.continuation} ${step.text}`))
      return step.exchange
    case 'done':
      ctl.handOver(out, step.action)
      return undefined
    case 'fail':
      out.push(reply(wording.failures[step.why]))
      return undefined
  }
}

/**
 * The client's line during an exchange. `text` is undefined for a line that is not clean text
 * (control bytes, invalid UTF-8): it cannot be base64 either, so it fails as undecodable.
 */
export function continueSasl(
  exchange: SaslExchange,
  text: string | undefined,
  wording: SaslWording,
  out: ClientAction[],
  ctl: LineControl,
): SaslExchange | undefined {
  if (text === undefined) {
    out.push(reply(wording.failures.undecodable))
    return undefined
  }
  return answerSaslStep(saslContinue(exchange, text), wording, out, ctl)
}
