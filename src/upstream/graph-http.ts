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
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
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
}

/** One request to Graph; resolves with its answer, or rejects with a GraphNetworkError. */
export function graphFetch(req: GraphRequest, o: GraphHttpOptions): Promise<GraphAnswer> {
  const url = new URL(req.url)
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest
  return new Promise<GraphAnswer>((resolve, reject) => {
    let written = false
    const fail = (e: unknown): void => {
      const code = (e as NodeJS.ErrnoException)?.code
      const maybeSent = written && !requestNeverSent(e)
      const what = (e as Error)?.message ?? String(e)
      reject(new GraphNetworkError(`${url.host}: ${what}`, maybeSent, code, e))
    }
    let r: ReturnType<typeof send>
    try {
      r = send(url, {
        method: req.method,
        headers: req.headers,
        timeout: o.timeoutMs,
        ...(o.signal ? { signal: o.signal } : {}),
        ...(url.protocol === 'https:' && o.caFile ? { secureContext: secureContextForCaFile(o.caFile) } : {}),
        // a fresh connection per message: no socket of another account's request is reused
        agent: false,
      })
    } catch (e) {
      fail(e)
      return
    }
    r.on('timeout', () =>
      r.destroy(Object.assign(new Error(`no answer within ${o.timeoutMs} ms`), { code: 'ETIMEDOUT' })),
    )
    r.on('error', fail)
    r.on('response', (res) => readAnswer(res).then(resolve, fail))
    r.end(req.body, () => {
      written = true
    })
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
