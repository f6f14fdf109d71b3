/**
 * Microsoft Graph submission, the protocol half (no sockets): the `POST /me/sendMail` request for a
 * MIME message, and what Graph's answer means for the message. Graph takes a MIME message as
 * base64 text (`Content-Type: text/plain`) and sends it as it is, headers, attachments and
 * encodings untouched; it answers 202 Accepted with no body once the message is accepted.
 *
 * Each status below is Graph's documented meaning (docs/providers.md, "Microsoft Graph"):
 * - learn.microsoft.com/graph/api/user-sendmail: MIME body base64 in text/plain; 202 Accepted.
 * - learn.microsoft.com/graph/errors: 400 bad request, 401 missing/invalid token (with a
 *   WWW-Authenticate challenge), 403 access denied, 413 request too large, 429 too many requests
 *   (Retry-After), 500/502/503/504 service errors; an error body `{"error":{"code","message"}}`.
 * - learn.microsoft.com/graph/throttling: honour Retry-After on 429 (and 503).
 * - learn.microsoft.com/graph/throttling-limits (Outlook service): a request of at most 4 MB.
 *
 * Owns: the request shape and the answer -> GraphOutcome rule. Must not: open connections, refresh
 * tokens or know SMTP (the proxy maps outcomes to replies).
 */
import { cleanServerText, firstLineOf } from '../core/server-text.js'
import { parseRetryAfter } from '../core/wait.js'

/** Outlook's request limit on Graph (throttling-limits): 4 MB, the base64 body included. */
export const GRAPH_MAX_REQUEST_BYTES = 4 * 1024 * 1024

/** The largest MIME message that fits in one sendMail request once base64-encoded. */
export const GRAPH_MAX_MIME_BYTES = Math.floor(GRAPH_MAX_REQUEST_BYTES / 4) * 3

export interface GraphRequest {
  method: 'POST'
  url: string
  headers: Record<string, string>
  body: Buffer
}

/** `POST {base}/me/sendMail` with the message as base64 MIME (user-sendmail, "MIME format"). */
export function sendMailRequest(base: string, token: string, mime: Buffer): GraphRequest {
  return sendMailPost(base, token, 'text/plain', Buffer.from(mime.toString('base64'), 'ascii'))
}

/**
 * A request that sends nothing but shows whether the token may send: sendMail with an empty JSON
 * body. Graph checks the token (401) and the permission (403) before the payload, then refuses
 * the empty payload (400): that 400 means "this token may send" (`mailkey test`).
 */
export function sendCheckRequest(base: string, token: string): GraphRequest {
  return sendMailPost(base, token, 'application/json', Buffer.from('{}'))
}

function sendMailPost(base: string, token: string, type: string, body: Buffer): GraphRequest {
  return {
    method: 'POST',
    url: `${base.replace(/\/+$/, '')}/me/sendMail`,
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': type,
      'content-length': String(body.length),
      accept: 'application/json',
    },
    body,
  }
}

/**
 * The CA file to trust for the Graph base: the account's private CA (given for its mail servers)
 * only for a Graph address of its own (a test or private endpoint), never for Microsoft's public
 * Graph, where the system's CAs decide: the bearer token goes there.
 */
export function graphCaFile(base: string, accountCa: string | undefined): string | undefined {
  if (!accountCa) return undefined
  const host = new URL(base).hostname.toLowerCase()
  return host === 'graph.microsoft.com' || host.endsWith('.graph.microsoft.com') ? undefined : accountCa
}

/** What came back, as the HTTP layer saw it. */
export interface GraphAnswer {
  status: number
  /** header names lower-case */
  headers: Record<string, string | undefined>
  /** the body, bounded by the HTTP layer */
  body: string
}

export type GraphOutcome =
  /** 202: Graph has the message */
  | { kind: 'accepted' }
  /** 401: the token was refused (expired, revoked, wrong audience): refresh once and try again */
  | { kind: 'token-refused'; code: string; message: string }
  /** 403 without a send-as problem: the grant lacks Mail.Send (a sign-in with --graph fixes it) */
  | { kind: 'forbidden'; code: string; message: string }
  /** 403 ErrorSendAsDenied: the From address is not one this user may send as */
  | { kind: 'send-as-denied'; code: string; message: string }
  /** 413: too big for one request */
  | { kind: 'too-big'; code: string; message: string }
  /** 429, or 503 with Retry-After: try again after `retryAfterSec` */
  | { kind: 'throttled'; status: number; retryAfterSec: number | undefined; message: string }
  /**
   * 5xx without a throttling Retry-After: Graph (or a gateway before it) failed; whether the
   * message was taken before that is unknown, so it is never sent again here
   */
  | { kind: 'unavailable'; status: number; retryAfterSec: number | undefined; message: string }
  /** 2xx other than 202, 3xx: not Graph's answer to sendMail (a wrong URL, something in between) */
  | { kind: 'unexpected'; status: number; message: string }
  /** any other 4xx: the message (or the request) is wrong; sending it again will not help */
  | { kind: 'refused'; status: number; code: string; message: string }

/** The error body's code and message (graph/errors), cleaned for a terminal or a reply line. */
export function graphError(body: string, secrets: readonly string[] = []): { code: string; message: string } {
  let code = ''
  let message = ''
  try {
    const e = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown } }).error
    if (typeof e?.code === 'string') code = e.code
    if (typeof e?.message === 'string') message = e.message
  } catch {
    message = body
  }
  return {
    code: cleanServerText(code, secrets).slice(0, 80),
    message: cleanServerText(firstLineOf(message), secrets).slice(0, 300),
  }
}

/** What Graph's answer means for the message. */
export function graphOutcome(a: GraphAnswer, now: number, secrets: readonly string[] = []): GraphOutcome {
  // user-sendmail: "If successful, this method returns 202 Accepted". Nothing else is taken as
  // sent: a 200 login page from a wrong URL or an intercepting proxy must not become a 250.
  if (a.status === 202) return { kind: 'accepted' }
  const { code, message } = graphError(a.body, secrets)
  const wait = parseRetryAfter(a.headers['retry-after'] ?? null, now)
  if (a.status === 401) return { kind: 'token-refused', code, message }
  if (a.status === 403)
    return code === 'ErrorSendAsDenied'
      ? { kind: 'send-as-denied', code, message }
      : { kind: 'forbidden', code, message }
  if (a.status === 413) return { kind: 'too-big', code, message }
  if (a.status === 429 || (a.status === 503 && wait !== undefined))
    return { kind: 'throttled', status: a.status, retryAfterSec: wait, message }
  if (a.status >= 500) return { kind: 'unavailable', status: a.status, retryAfterSec: wait, message }
  if (a.status < 400) return { kind: 'unexpected', status: a.status, message }
  return { kind: 'refused', status: a.status, code, message }
}
