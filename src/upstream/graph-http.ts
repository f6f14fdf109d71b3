/**
 * Microsoft Graph over HTTPS, the I/O half of graph.ts: one request, the answer read with a bound,
 * the server's certificate verified (the system's CAs, plus the account's own CA when it has one),
 * within a deadline and an abort signal. http:// only for loopback (checked when the URL was set,
 * providers/resolve.ts checkGraphUrl).
 *
 * A failure says whether the request may have reached Graph (`maybeSent`): a connection that broke
 * after the body was written may have been accepted there, so the message is not "refused" by
 * Graph, only not confirmed; one that never connected was certainly not sent.
 *
 * Owns: the HTTP exchange. Must not: decide what an answer means (graph.ts) or retry.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { requestNeverSent } from '../core/net.js'
import type { GraphAnswer, GraphRequest } from './graph.js'
import { secureContextForCaFile } from './transport.js'

/** Graph's error bodies are small JSON; anything longer is cut here. */
const MAX_ANSWER_BYTES = 64 * 1024

export class GraphNetworkError extends Error {
  override name = 'GraphNetworkError'
  /** the request may have reached Graph (the connection failed after it was written) */
  readonly maybeSent: boolean
  readonly code: string | undefined
  constructor(message: string, maybeSent: boolean, code: string | undefined, cause?: unknown) {
    super(message, { cause })
    this.maybeSent = maybeSent
    this.code = code
  }
}

export interface GraphHttpOptions {
  caFile?: string
  timeoutMs: number
  signal?: AbortSignal
  /**
   * whose request this is (the account): its connections are kept open for its next messages and
   * never used for another account's (a TLS handshake per message was most of the cost,
   * bench/README.md "Graph"); absent: a connection of its own, closed after the answer
   */
  connectionKey?: string
}

/** Kept-alive connections per account (and Graph base and CA); at most this many accounts. */
const MAX_AGENTS = 256
const agents = new Map<string, HttpAgent>()

function agentFor(key: string, https: boolean): HttpAgent {
  let a = agents.get(key)
  if (a) {
    agents.delete(key) // most recently used last
    agents.set(key, a)
    return a
  }
  // idle connections close after 30 s; one request per connection at a time
  const o = { keepAlive: true, maxSockets: 4, maxFreeSockets: 2, timeout: 30_000 }
  a = https ? new HttpsAgent(o) : new HttpAgent(o)
  agents.set(key, a)
  if (agents.size > MAX_AGENTS) {
    const [oldest, old] = agents.entries().next().value as [string, HttpAgent]
    agents.delete(oldest)
    old.destroy()
  }
  return a
}

/** One request to Graph; resolves with its answer, or rejects with a GraphNetworkError. */
export function graphFetch(req: GraphRequest, o: GraphHttpOptions): Promise<GraphAnswer> {
  const url = new URL(req.url)
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest
  return new Promise<GraphAnswer>((resolve, reject) => {
    // once connected (a new connection, or a kept-alive one), the request may have reached Graph
    // whatever fails after: only a failure to connect (refused, no such host, a certificate
    // refused: core/net.ts) proves the message was not sent
    let connected = false
    const fail = (e: unknown): void => {
      const code = (e as NodeJS.ErrnoException)?.code
      const maybeSent = connected && !requestNeverSent(e)
      const what = (e as Error)?.message ?? String(e)
      reject(new GraphNetworkError(`${url.host}: ${what}`, maybeSent, code, e))
    }
    let r: ReturnType<typeof send>
    try {
      r = send(url, {
        method: req.method,
        headers: req.headers,
        ...(o.signal ? { signal: o.signal } : {}),
        ...(url.protocol === 'https:' && o.caFile ? { secureContext: secureContextForCaFile(o.caFile) } : {}),
        agent: o.connectionKey
          ? agentFor(`${o.connectionKey}\0${url.origin}\0${o.caFile ?? ''}`, url.protocol === 'https:')
          : false,
      })
    } catch (e) {
      fail(e)
      return
    }
    r.on('socket', (sock) => {
      if (!sock.connecting) connected = true
      else sock.once('connect', () => (connected = true))
    })
    // one deadline for the whole exchange (a socket timeout restarts with every byte, and the
    // agent's own idle timeout would double it)
    const deadline = setTimeout(
      () => r.destroy(Object.assign(new Error(`no answer within ${o.timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      o.timeoutMs,
    )
    r.once('close', () => clearTimeout(deadline))

    r.on('error', fail)
    r.on('response', (res) => readAnswer(res).then(resolve, fail))
    r.end(req.body)
  })
}

async function readAnswer(res: IncomingMessage): Promise<GraphAnswer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of res as AsyncIterable<Buffer>) {
    if (size < MAX_ANSWER_BYTES) chunks.push(c.subarray(0, MAX_ANSWER_BYTES - size))
    size += c.length
  }
  const headers: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(res.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v
  return { status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks).toString('utf8') }
}
