// A Microsoft Graph sendMail endpoint for tests, built from Microsoft's public documentation (each
// behaviour and its source: test/fixtures/graph/README.md). Bearer tokens are checked by RFC 7662
// introspection (the lab's graph-rs client): active, Graph audience, Mail.Send. Accepted mail is
// recorded (exact MIME bytes); scripted faults stand in for throttling and outages. Loopback only.
// It must not log tokens or message bodies: the request log holds method, path and status only,
// and a recorded mail holds a token's SHA-256, never the token.
import { createHash, randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createServer as createHttpServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { delayOrDrop } from './http-faults.js'
import { listenLoopback } from './listen.js'

/** Microsoft Graph's audience (the resource its access tokens are issued for). */
export const GRAPH_AUDIENCE = 'https://graph.microsoft.com'
/** The request size limit of Outlook resources in Microsoft Graph: 4 MB. */
export const GRAPH_REQUEST_LIMIT = 4 * 1024 * 1024
/** What Microsoft Graph sends with a 401 (Graph's own app id as client_id). */
export const GRAPH_WWW_AUTHENTICATE =
  'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", ' +
  'client_id="00000003-0000-0000-c000-000000000000"'

/** The error codes and messages the emulator answers with (fixtures: test/fixtures/graph/*.json). */
export const GRAPH_ERRORS = {
  tokenEmpty: { status: 401, code: 'InvalidAuthenticationToken', message: 'Access token is empty.' },
  tokenInvalid: { status: 401, code: 'InvalidAuthenticationToken', message: 'Access token validation failure.' },
  accessDenied: {
    status: 403,
    code: 'ErrorAccessDenied',
    message: 'Access is denied. Check credentials and try again.',
  },
  sendAsDenied: {
    status: 403,
    code: 'ErrorSendAsDenied',
    message:
      'The user account which was used to submit this request does not have the right to send mail on behalf ' +
      'of the specified sending account., Cannot submit message.',
  },
  invalidBase64: {
    status: 400,
    code: 'ErrorMimeContentInvalidBase64String',
    message: 'Invalid base64 string for MIME content.',
  },
  noRecipients: {
    status: 400,
    code: 'ErrorInvalidRecipients',
    message: "At least one recipient is not valid., A message can't be sent because it contains no recipients.",
  },
  emptyPayload: { status: 400, code: 'BadRequest', message: 'Empty Payload. JSON content expected.' },
  invalidJson: {
    status: 400,
    code: 'BadRequest',
    message:
      'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.',
  },
  tooLarge: { status: 413, code: 'ErrorRequestEntityTooLarge', message: 'The request size exceeds the maximum limit.' },
  unsupportedMedia: {
    status: 415,
    code: 'UnsupportedMediaType',
    message: 'The content type of the request is a format that is not supported by the service.',
  },
  notFound: { status: 404, code: 'ResourceNotFound', message: 'Resource not found for the segment.' },
  methodNotAllowed: {
    status: 405,
    code: 'MethodNotAllowed',
    message: 'The HTTP method in the request is not allowed on the resource.',
  },
} as const

export type GraphErrorName = keyof typeof GRAPH_ERRORS

/** One message Graph accepted (202). */
export interface GraphMail {
  /** The exact decoded MIME bytes (MIME form); undefined for a JSON send. */
  mime: Buffer | undefined
  /** The JSON `message` object (JSON form). */
  json?: Record<string, unknown>
  /** The From address (the user's when the message has none). */
  from: string
  to: string[]
  cc: string[]
  bcc: string[]
  /** The token's user (email or upn claim). */
  user: string
  savedToSentItems: boolean
  /** SHA-256 (hex) of the bearer token. */
  tokenHash: string
}

export interface GraphRequestEntry {
  method: string
  /** The path without query. */
  path: string
  /** 0 when no answer went out (a dropped connection). */
  status: number
}

export interface GraphFault {
  /** HTTP status of the scripted answer; without it (and destroySocket) the request is only delayed. */
  status?: number
  /** Response body; an object is sent as JSON. */
  body?: string | object
  headers?: Record<string, string>
  /** How many sendMail requests get this fault (default 1). */
  times?: number
  /** Wait this long before answering / dropping / going on. */
  delayMs?: number
  /** Drop the connection instead of answering. */
  destroySocket?: boolean
  /** Process the request normally (the message is accepted and recorded), then drop the connection. */
  afterAccept?: boolean
}

export interface GraphServerOptions {
  /** RFC 7662 introspection of a bearer token, e.g. `(t) => lab.introspectGraph(t)`. */
  introspect: (token: string) => Promise<Record<string, unknown>>
  /** Certificate and key (PEM files) for https; undefined: plain http. */
  tls: { certFile: string; keyFile: string } | undefined
  /** May `user` send as `from` (Send As / Send on Behalf)? Default: only as itself. */
  sendAs?: (user: string, from: string) => boolean
}

export interface GraphServer {
  /** Base URL, e.g. https://127.0.0.1:PORT/v1.0 (no trailing slash; the test CA names 127.0.0.1). */
  readonly url: string
  readonly port: number
  /** Every accepted message, in order. */
  readonly received: GraphMail[]
  /** Every request, in the order its answer went out (or its connection dropped). */
  readonly requests: GraphRequestEntry[]
  script(fault: GraphFault): void
  clearFaults(): void
  close(): Promise<void>
}

/** Graph's error body: {"error":{"code","message","innerError":{date,request-id,client-request-id}}}. */
export function graphErrorBody(code: string, message: string, requestId: string = randomUUID()): object {
  const date = new Date().toISOString().replace(/\.\d+Z$/, '')
  return { error: { code, message, innerError: { date, 'request-id': requestId, 'client-request-id': requestId } } }
}

class GraphError extends Error {
  readonly which: GraphErrorName
  constructor(which: GraphErrorName) {
    super(GRAPH_ERRORS[which].message)
    this.which = which
  }
}

/** Splits an RFC 5322 header section into unfolded (name, value) pairs (UTF-8 allowed, RFC 6532). */
export function parseHeaders(mime: Buffer): { name: string; value: string }[] {
  const text = mime.toString('utf8')
  const end = /\r?\n\r?\n/.exec(text)
  const section = end ? text.slice(0, end.index) : text
  const out: { name: string; value: string }[] = []
  for (const line of section.split(/\r?\n/)) {
    const last = out[out.length - 1]
    if (/^[ \t]/.test(line) && last) {
      last.value += line
      continue
    }
    const colon = line.indexOf(':')
    if (colon > 0) out.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1) })
  }
  return out
}

interface AddressScan {
  out: string[]
  text: string
  angle: string | undefined
}

function flushAddress(scan: AddressScan): void {
  let addr = scan.angle ?? scan.text
  const route = addr.lastIndexOf(':')
  if (scan.angle !== undefined && route >= 0) addr = addr.slice(route + 1) // obsolete route <@a,@b:x@y>
  addr = addr.trim()
  if (addr.includes('@')) scan.out.push(addr)
  scan.text = ''
  scan.angle = undefined
}

/**
 * The addr-specs of an RFC 5322 address-list: display names (quoted or not), comments, angle
 * addresses and groups ("team: a@x, b@y;") handled. RFC 2047 words only occur in display names.
 */
export function parseAddressList(value: string): string[] {
  const scan: AddressScan = { out: [], text: '', angle: undefined }
  let quoted = false
  let comment = 0
  let inAngle: string | undefined
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string
    if (quoted) {
      if (c === '\\') scan.text += value[++i] ?? ''
      else if (c === '"') quoted = false
      if (c !== '\\' && c !== '"') scan.text += c
    } else if (comment > 0) {
      if (c === '\\') i++
      else if (c === '(') comment++
      else if (c === ')') comment--
    } else if (inAngle !== undefined) {
      if (c === '>') {
        scan.angle = inAngle
        inAngle = undefined
      } else inAngle += c
    } else if (c === '"') quoted = true
    else if (c === '(') comment = 1
    else if (c === '<') inAngle = ''
    else if (c === ':')
      scan.text = '' // a group's display name
    else if (c === ',' || c === ';') flushAddress(scan)
    else scan.text += c
  }
  flushAddress(scan)
  return scan.out
}

/** Strict base64 (RFC 4648 alphabet and padding; line breaks allowed, as in MIME bodies). */
export function decodeBase64Strict(text: string): Buffer | undefined {
  const compact = text.replace(/[\r\n]/g, '')
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return undefined
  return Buffer.from(compact, 'base64')
}

function addressesOf(headers: { name: string; value: string }[], name: string): string[] {
  return headers.filter((h) => h.name === name).flatMap((h) => parseAddressList(h.value))
}

function jsonAddresses(list: unknown): string[] {
  if (!Array.isArray(list)) return []
  return list
    .map((r) => (r as { emailAddress?: { address?: unknown } } | null)?.emailAddress?.address)
    .filter((a): a is string => typeof a === 'string' && a.length > 0)
}

/** A message in MIME form (base64 body). Throws GraphError. */
export function mimeMail(body: Buffer): Omit<GraphMail, 'user' | 'tokenHash'> {
  const mime = decodeBase64Strict(body.toString('latin1'))
  if (!mime) throw new GraphError('invalidBase64')
  const headers = parseHeaders(mime)
  const from = addressesOf(headers, 'from')[0] ?? ''
  return {
    mime,
    from,
    to: addressesOf(headers, 'to'),
    cc: addressesOf(headers, 'cc'),
    bcc: addressesOf(headers, 'bcc'),
    savedToSentItems: true,
  }
}

/** A message in JSON form ({ message, saveToSentItems }). Throws GraphError. */
export function jsonMail(body: Buffer): Omit<GraphMail, 'user' | 'tokenHash'> {
  if (body.toString('utf8').trim() === '') throw new GraphError('emptyPayload')
  let payload: unknown
  try {
    payload = JSON.parse(body.toString('utf8'))
  } catch {
    throw new GraphError('invalidJson')
  }
  const message = (payload as { message?: unknown } | null)?.message
  if (!message || typeof message !== 'object') throw new GraphError('emptyPayload')
  const m = message as Record<string, unknown>
  const from = jsonAddresses([m.from])[0] ?? ''
  return {
    mime: undefined,
    json: m,
    from,
    to: jsonAddresses(m.toRecipients),
    cc: jsonAddresses(m.ccRecipients),
    bcc: jsonAddresses(m.bccRecipients),
    savedToSentItems: (payload as { saveToSentItems?: unknown }).saveToSentItems !== false,
  }
}

function sendGraphError(res: ServerResponse, which: GraphErrorName): void {
  const { status, code, message } = GRAPH_ERRORS[which]
  const headers: Record<string, string> = {}
  if (status === 401) headers['www-authenticate'] = GRAPH_WWW_AUTHENTICATE
  if (status === 413) headers.connection = 'close'
  sendJson(res, status, graphErrorBody(code, message, String(res.getHeader('request-id') ?? randomUUID())), headers)
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...headers,
  })
  res.end(text)
}

/** Reads the body up to `limit` bytes; undefined (and reading stops) when it is larger. */
async function readLimited(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length'] ?? NaN)
  if (declared > limit) return undefined
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req.iterator({ destroyOnReturn: false })) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk))
    size += buf.length
    if (size > limit) return undefined
    chunks.push(buf)
  }
  return Buffer.concat(chunks)
}

/** The bearer token of an Authorization header ('' when there is none). */
function bearerToken(req: IncomingMessage): string {
  const m = /^bearer[ \t]+(\S+)\s*$/i.exec(req.headers.authorization ?? '')
  return m?.[1] ?? ''
}

function stringList(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string')
  return typeof value === 'string' ? value.split(' ').filter(Boolean) : []
}

/**
 * The signed-in user of a token that may send mail. Throws GraphError: 401 when the token is
 * missing or not an active Graph token, 403 without Mail.Send.
 */
async function authorize(opts: GraphServerOptions, token: string): Promise<string> {
  if (!token) throw new GraphError('tokenEmpty')
  const info = await opts.introspect(token)
  const audience = stringList(info.aud)
  if (info.active !== true || !audience.includes(GRAPH_AUDIENCE)) throw new GraphError('tokenInvalid')
  const scopes = stringList(info.scope ?? info.scp)
  if (!scopes.some((s) => s === 'Mail.Send' || s === `${GRAPH_AUDIENCE}/Mail.Send`)) {
    throw new GraphError('accessDenied')
  }
  const user = typeof info.email === 'string' ? info.email : typeof info.upn === 'string' ? info.upn : ''
  if (!user) throw new GraphError('tokenInvalid')
  return user
}

/** `/v1.0/me/sendMail` → 'me'; `/v1.0/users/{id}/sendMail` → the id; undefined for anything else. */
function sendMailTarget(path: string): string | undefined {
  const m = /^\/v1\.0\/(?:(me)|users\/([^/]+))\/sendmail$/i.exec(path)
  if (!m) return undefined
  if (m[1]) return 'me'
  try {
    return decodeURIComponent(m[2] ?? '')
  } catch {
    return ''
  }
}

interface FaultSlot {
  fault: GraphFault
  remaining: number
}

/** What a running emulator keeps: its options, the mail it accepted and the faults still scripted. */
interface GraphState {
  opts: GraphServerOptions
  received: GraphMail[]
  faults: FaultSlot[]
  closing: AbortSignal
}

function takeFault(faults: FaultSlot[]): GraphFault | undefined {
  const slot = faults[0]
  if (!slot) return undefined
  slot.remaining -= 1
  if (slot.remaining <= 0) faults.shift()
  return slot.fault
}

/** true when the fault fully answered (or dropped) the request. */
async function applyFault(
  req: IncomingMessage,
  res: ServerResponse,
  fault: GraphFault,
  closing: AbortSignal,
): Promise<boolean> {
  if (await delayOrDrop(req, fault, closing)) return true
  if (fault.status === undefined || fault.afterAccept) return false
  const isText = typeof fault.body === 'string'
  const text = fault.body === undefined ? '' : isText ? (fault.body as string) : JSON.stringify(fault.body)
  const headers: Record<string, string> = { 'cache-control': 'no-store' }
  if (fault.body !== undefined) headers['content-type'] = isText ? 'text/plain; charset=utf-8' : 'application/json'
  for (const [name, value] of Object.entries(fault.headers ?? {})) headers[name.toLowerCase()] = value
  headers['content-length'] = String(Buffer.byteLength(text))
  res.writeHead(fault.status, headers)
  res.end(text)
  return true
}

/** The message of a sendMail body in the form its Content-Type names. Throws GraphError. */
function parseSendMail(req: IncomingMessage, body: Buffer): Omit<GraphMail, 'user' | 'tokenHash'> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
  if (type === 'text/plain') return mimeMail(body)
  if (type === 'application/json') return jsonMail(body)
  throw new GraphError('unsupportedMedia')
}

/** POST .../sendMail: faults, size, token, message, recipients, sender; then 202 (or a drop). */
async function sendMail(state: GraphState, req: IncomingMessage, res: ServerResponse, target: string): Promise<void> {
  const fault = takeFault(state.faults)
  if (fault && (await applyFault(req, res, fault, state.closing))) return
  const body = await readLimited(req, GRAPH_REQUEST_LIMIT)
  if (body === undefined) throw new GraphError('tooLarge')
  const token = bearerToken(req)
  const user = await authorize(state.opts, token)
  if (target !== 'me' && target.toLowerCase() !== user.toLowerCase()) throw new GraphError('accessDenied')
  const mail = parseSendMail(req, body)
  if (mail.to.length + mail.cc.length + mail.bcc.length === 0) throw new GraphError('noRecipients')
  const from = mail.from || user
  if (from.toLowerCase() !== user.toLowerCase() && !state.opts.sendAs?.(user, from)) {
    throw new GraphError('sendAsDenied')
  }
  state.received.push({ ...mail, from, user, tokenHash: createHash('sha256').update(token).digest('hex') })
  if (fault?.afterAccept) {
    req.socket.destroy()
    return
  }
  res.writeHead(202, { 'content-length': '0' })
  res.end()
}

async function handle(state: GraphState, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  res.setHeader('request-id', randomUUID())
  const target = sendMailTarget(path)
  try {
    if (target === undefined) throw new GraphError('notFound')
    if (req.method !== 'POST') throw new GraphError('methodNotAllowed')
    await sendMail(state, req, res, target)
  } catch (err) {
    if (!(err instanceof GraphError)) throw err
    if (!res.headersSent && !res.destroyed) sendGraphError(res, err.which)
  }
}

async function listen(
  tls: GraphServerOptions['tls'],
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Server> {
  let server: Server
  if (tls) {
    const [cert, key] = await Promise.all([readFile(tls.certFile), readFile(tls.keyFile)])
    server = createHttpsServer({ cert, key }, onRequest)
  } else {
    server = createHttpServer(onRequest)
  }
  server.keepAliveTimeout = 2000
  await listenLoopback(server)
  return server
}

export async function startGraphServer(opts: GraphServerOptions): Promise<GraphServer> {
  const requests: GraphRequestEntry[] = []
  const closing = new AbortController()
  const state: GraphState = { opts, received: [], faults: [], closing: closing.signal }

  const server = await listen(opts.tls, (req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    res.once('close', () => {
      requests.push({ method: req.method ?? '', path, status: res.writableFinished ? res.statusCode : 0 })
    })
    handle(state, req, res, path).catch(() => {
      if (res.headersSent || res.destroyed) res.destroy()
      else sendJson(res, 500, graphErrorBody('generalException', 'An internal server error occurred.'))
    })
  })
  const port = (server.address() as AddressInfo).port

  let closed: Promise<void> | undefined
  return {
    url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/v1.0`,
    port,
    received: state.received,
    requests,
    script(fault: GraphFault) {
      const times = fault.times ?? 1
      if (!(times > 0)) throw new RangeError('script: times must be > 0')
      state.faults.push({ fault: { ...fault }, remaining: times })
    },
    clearFaults() {
      state.faults.length = 0
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing.abort()
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closed
    },
  }
}
