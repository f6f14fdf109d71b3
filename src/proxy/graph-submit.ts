/**
 * One message through Microsoft Graph for the proxy's SMTP listener and `mailkey send` (issue 16):
 * the envelope and message the client gave, the account's Graph token, `POST /me/sendMail`, and
 * the SMTP reply that tells the client the truth. The client sees 250 only after Graph answered
 * 202; a message Graph did not take is refused to the client (4xx: try again, 5xx: it will not
 * work as it is), so a message is never lost in between. Graph's Retry-After is waited out here
 * when it is short (the client waits for the DATA reply up to 10 minutes, RFC 5321 §4.5.3.2.6),
 * and passed on as a 451 when it is long.
 *
 * Owns: the submission attempt and the GraphOutcome -> SMTP reply table. Must not: read the
 * client socket or parse SMTP (protocols/smtp/submission.ts does).
 */
import { MailkeyError, shortageCode } from '../errors.js'
import { Secret } from '../core/secret.js'
import { cleanServerText } from '../core/server-text.js'
import { shArg } from '../core/address.js'
import { sleep } from '../core/wait.js'
import { graphMessageFor } from '../protocols/smtp/mime-recipients.js'
import {
  GRAPH_MAX_MIME_BYTES,
  graphCaFile,
  graphOutcome,
  sendMailRequest,
  type GraphOutcome,
} from '../upstream/graph.js'
import { GraphNetworkError, graphFetch } from '../upstream/graph-http.js'
import type { TokenSource } from './token-source.js'
import type { AccountRecord } from '../domain/account.js'

export interface GraphSubmitOptions {
  /** per HTTP request (default 60 s) */
  timeoutMs?: number
  /** the longest Retry-After waited out before answering (default 20 s); longer ones go to the client as 451 */
  maxWaitSec?: number
  /** attempts per message, waits included (default 3) */
  maxAttempts?: number
  now?: () => number
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
  signal?: AbortSignal
}

export interface SubmitResult {
  /** the SMTP reply line (CRLF not included) */
  reply: string
  /** true only when Graph answered 202 */
  accepted: boolean
  /** for the log (no secrets, no message content) */
  note: string
}

type Tokens = Pick<TokenSource, 'record' | 'getAccessToken'>

const reply = (line: string, note: string, accepted = false): SubmitResult => ({ reply: line, accepted, note })
const text = (s: string): string =>
  cleanServerText(s)
    .replace(/[\r\n]+/g, ' ')
    .slice(0, 200)

/** Submit one message for `account` through Graph (rules above). */
export async function submitViaGraph(
  tokens: Tokens,
  account: string,
  envelope: { to: readonly string[] },
  message: Buffer,
  o: GraphSubmitOptions = {},
): Promise<SubmitResult> {
  let rec: AccountRecord | undefined
  try {
    rec = await tokens.record(account)
  } catch (e) {
    return tokenFailure(account, e)
  }
  if (!rec) return tokenFailure(account, undefined)
  const base = rec.settings.servers.graph
  if (!base)
    return reply(
      `554 5.3.5 ${text(account)} has no Microsoft Graph address: run "mailkey add ${text(shArg(account))} --graph"`,
      'no graph url',
    )
  const plan = graphMessageFor(message, envelope.to)
  if (plan.kind === 'bad-recipient')
    return reply(
      `550 5.1.3 ${text(JSON.stringify(plan.address))} is not an address Microsoft Graph can send to`,
      plan.kind,
    )
  if (plan.kind === 'unreadable-header')
    return reply(
      `554 5.6.0 The message header cannot be read (${plan.why}); Microsoft Graph needs plain To/Cc/Bcc fields`,
      plan.kind,
    )
  if (plan.kind === 'extra-header-recipients')
    return reply(
      `554 5.7.1 Microsoft Graph sends to every To/Cc/Bcc address, and ${text(plan.addresses.slice(0, 3).join(', '))} ${plan.addresses.length > 1 ? 'are' : 'is'} not among the recipients given (RCPT TO)`,
      plan.kind,
    )
  // RFC 1870 §6.2 / RFC 3463 5.3.4: too big for the system (Graph's 4 MB request, base64 included)
  if (plan.mime.length > GRAPH_MAX_MIME_BYTES)
    return reply(
      `552 5.3.4 Message too big for Microsoft Graph (${plan.mime.length} bytes; at most ${GRAPH_MAX_MIME_BYTES})`,
      'too big',
    )
  return await attempts(tokens, account, graphCaFile(base, rec.settings.ca), base, plan.mime, o)
}

async function attempts(
  tokens: Tokens,
  account: string,
  caFile: string | undefined,
  base: string,
  mime: Buffer,
  o: GraphSubmitOptions,
): Promise<SubmitResult> {
  const now = o.now ?? Date.now
  const maxAttempts = o.maxAttempts ?? 3
  let forceRefresh = false
  let last: SubmitResult | undefined
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    let token: Secret
    try {
      token = (
        await tokens.getAccessToken(account, {
          resource: 'graph',
          forceRefresh,
          ...(o.signal ? { signal: o.signal } : {}),
        })
      ).token
    } catch (e) {
      return tokenFailure(account, e)
    }
    const step = await once(account, base, token, mime, caFile, o, now())
    if (step.kind === 'done') return step.result
    last = step.result
    if (step.kind === 'refresh' && !forceRefresh) {
      forceRefresh = true
      continue
    }
    if (step.kind !== 'wait' || attempt === maxAttempts) return last
    forceRefresh = false
    await (o.sleep ?? sleep)(step.ms, o.signal)
    if (o.signal?.aborted) return last
  }
  return last ?? reply('451 4.3.0 Microsoft Graph did not answer; try again later', 'no attempt')
}

type Step =
  | { kind: 'done'; result: SubmitResult }
  | { kind: 'refresh'; result: SubmitResult }
  | { kind: 'wait'; ms: number; result: SubmitResult }

async function once(
  account: string,
  base: string,
  token: Secret,
  mime: Buffer,
  caFile: string | undefined,
  o: GraphSubmitOptions,
  at: number,
): Promise<Step> {
  let outcome: GraphOutcome
  try {
    const answer = await graphFetch(sendMailRequest(base, token.reveal(), mime), {
      timeoutMs: o.timeoutMs ?? 60_000,
      connectionKey: account,
      ...(caFile ? { caFile } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    })
    outcome = graphOutcome(answer, at, [token.reveal()])
  } catch (e) {
    return networkStep(e, o)
  }
  return outcomeStep(outcome, o.maxWaitSec ?? 20, account)
}

/** A connection failure: never sent -> try again shortly; maybe sent -> 451, honestly worded (no 250 on a guess). */
function networkStep(e: unknown, o: GraphSubmitOptions): Step {
  const why = e instanceof Error ? text(e.message) : 'network error'
  if (o.signal?.aborted)
    return { kind: 'done', result: reply('451 4.4.2 Interrupted before Microsoft Graph answered', 'aborted') }
  if (e instanceof GraphNetworkError && e.maybeSent)
    return {
      kind: 'done',
      result: reply(
        `451 4.4.2 The connection to Microsoft Graph broke before it answered (${why}); the message may have gone out; try again`,
        'answer lost',
      ),
    }
  return {
    kind: 'wait',
    ms: 1000,
    result: reply(`451 4.4.1 Microsoft Graph cannot be reached (${why}); try again later`, 'unreachable'),
  }
}

/** The GraphOutcome -> SMTP reply table (RFC 3463 codes). */
function outcomeStep(g: GraphOutcome, maxWaitSec: number, account: string): Step {
  const done = (line: string, note: string, accepted = false): Step => ({
    kind: 'done',
    result: reply(line, note, accepted),
  })
  switch (g.kind) {
    case 'accepted':
      return done('250 2.0.0 OK: accepted by Microsoft Graph (202)', 'accepted', true)
    case 'token-refused':
      return {
        kind: 'refresh',
        result: reply(`454 4.7.0 Microsoft Graph refused the token (401 ${text(g.code)}); try again`, 'token refused'),
      }
    case 'forbidden':
      return done(
        `535 5.7.8 Microsoft Graph denied sending (403 ${text(g.code)}): the sign-in lacks Mail.Send; run "mailkey add ${text(shArg(account))} --graph"`,
        'forbidden',
      )
    case 'send-as-denied':
      // Exchange's own SMTP code for this (5.7.60: not allowed to send as this sender)
      return done(
        `550 5.7.60 Not allowed to send as this From address (Graph ${text(g.code)}: ${text(g.message)})`,
        'send-as',
      )
    case 'too-big':
      return done(`552 5.3.4 Message too big for Microsoft Graph (413 ${text(g.code)})`, 'too big')
    case 'throttled':
      return waitOrTell(g, maxWaitSec)
    case 'unavailable':
      // a 5xx may come from a gateway after Exchange took the message: never sent again here
      return done(
        `451 4.3.0 Microsoft Graph failed (${g.status}) before it confirmed the message; it may have gone out; try again later`,
        'unavailable',
      )
    case 'unexpected':
      return done(
        `451 4.3.0 The Graph address answered ${g.status}, not Microsoft Graph's 202; nothing is known to be sent; check "mailkey status"`,
        'unexpected',
      )
    case 'refused':
      return done(
        `554 5.6.0 Microsoft Graph refused the message (${g.status} ${text(g.code)}: ${text(g.message)})`,
        'refused',
      )
  }
}

/**
 * 429, or 503 with Retry-After (graph/throttling: the request was not processed): wait a short
 * Retry-After out and try again; a long one goes to the client as 451.
 */
function waitOrTell(g: Extract<GraphOutcome, { kind: 'throttled' }>, maxWaitSec: number): Step {
  const wait = g.retryAfterSec ?? 5
  const line = `451 4.7.0 Microsoft Graph is throttling this mailbox; try again in ${Math.max(wait, 1)} s`
  if (wait > maxWaitSec) return { kind: 'done', result: reply(line, 'throttled') }
  return { kind: 'wait', ms: wait * 1000, result: reply(line, 'throttled') }
}

/** No Graph token: a dead grant or no consent (535, the command to run), or a passing trouble (451). */
function tokenFailure(account: string, e: unknown): SubmitResult {
  if (e === undefined) return reply(`550 5.1.0 No account "${text(account)}" in mailkey`, 'no account')
  if (shortageCode(e) === undefined && e instanceof MailkeyError && !e.transient) {
    const next = `run "mailkey add ${text(shArg(account))} --graph"`
    return reply(`535 5.7.8 No Microsoft Graph token for ${text(account)} (${text(e.message)}); ${next}`, e.code)
  }
  const why = e instanceof Error ? text(e.message) : 'unknown error'
  return reply(`451 4.7.0 No Microsoft Graph token right now (${why}); try again`, 'token transient')
}
