/**
 * `mailkey serve`'s HTTP(S) server: api.ts behind node:http or node:https, one JSON log line per
 * request (the key's name, never the key), the keep-alive schedule, and a graceful stop: not
 * ready at once, no new connections, idle ones closed, answers in flight (and the refreshes behind
 * them) finished within the grace period.
 *
 * Replicas share nothing but the store: single flight across them is the store's (docs/adr/0011),
 * the failure hooks run on the replica that led the refresh only, the keys are read from the
 * store (serve/keys.ts).
 *
 * Owns: sockets, the request log, the stop. Must not: decide what a response says (api.ts).
 */
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttps } from 'node:https'
import type { AddressInfo } from 'node:net'
import { StoreError, ERR } from '../errors.js'
import type { ItemStore } from '../store/items.js'
import { scheduleKeepAlive, type KeepAliver } from '../broker/keep-alive-schedule.js'
import { Api, type ServiceSource } from './api.js'
import { KeyRing } from './keys.js'
import { Metrics } from './metrics.js'
import { problem, problemOf, type Problem } from './problem.js'
import { TokenCache } from './token-cache.js'

export type ServeLog = (e: Record<string, string | number | boolean | undefined>) => void

export interface ServeOptions {
  source: ServiceSource & KeepAliver & { items(): Promise<ItemStore>; storeLabel(): Promise<string> }
  host: string
  port: number
  tls?: { cert: string; key: string }
  log: ServeLog
  metrics?: Metrics
  /** how long a replica reuses a token it handed out (default 1000 ms; 0: never) */
  cacheMs?: number
  /** how long the key list is trusted (default 1000 ms) */
  keyTtlMs?: number
  /** keep-alive pass interval (default 6 h; 0: none) */
  keepAliveIntervalMs?: number
  /** connections at once (default 1000) */
  maxConnections?: number
  /** connections at once from one address (default 256; 0: no limit, e.g. behind a load balancer) */
  maxPerAddress?: number
}

export interface RunningService {
  readonly host: string
  readonly port: number
  readonly url: string
  readonly metrics: Metrics
  /** requests being answered */
  inFlight(): number
  /** stop: not ready, no new connections, in-flight answers finished within `graceMs` */
  close(graceMs?: number): Promise<void>
}

const READY_TIMEOUT_MS = 3_000
/** on a stop, how long keep-alive clients are told to go before idle connections are closed */
const DRAIN_MS = 500

export async function startService(o: ServeOptions): Promise<RunningService> {
  const metrics = o.metrics ?? new Metrics()
  const keys = new KeyRing(() => o.source.items(), { ttlMs: o.keyTtlMs ?? 1000 })
  let stopping = false
  const ready = async (): Promise<Problem | undefined> => {
    if (stopping) return problem('unavailable', 'this replica is stopping', { retry_after: 1 })
    try {
      await withTimeout(keys.refresh(), READY_TIMEOUT_MS, await o.source.storeLabel().catch(() => 'the store'))
      return undefined
    } catch (e) {
      const p = problemOf(e)
      o.log({ level: 'warn', event: 'not_ready', code: p.code, msg: p.detail })
      return p
    }
  }
  const api = new Api({ source: o.source, keys, cache: new TokenCache(o.cacheMs ?? 1000), metrics, ready })
  const inflight = new Set<Promise<void>>()
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const p = answer(api, metrics, o.log, req, res, () => stopping).finally(() => inflight.delete(p))
    inflight.add(p)
  }
  // headersTimeout is enforced at this interval (Node's default: 30 s, so an idle socket could hold
  // a connection slot for ~40 s)
  const opts = { connectionsCheckingInterval: 1000 }
  const server: Server = o.tls
    ? createHttps({ ...opts, cert: o.tls.cert, key: o.tls.key }, onRequest)
    : createHttp(opts, onRequest)
  server.maxConnections = o.maxConnections ?? 1000
  limitPerAddress(server, o.maxPerAddress ?? 256)
  server.keepAliveTimeout = 5_000
  server.headersTimeout = 10_000
  server.requestTimeout = 120_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: o.host, port: o.port }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  server.on('clientError', (_e, socket) => socket.destroy())
  const stopKeepAlive = scheduleKeepAlive(o.source, o.log, o.keepAliveIntervalMs ?? 6 * 60 * 60_000)
  const addr = server.address() as AddressInfo
  const host = addr.address
  const url = `${o.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${addr.port}`
  return {
    host,
    port: addr.port,
    url,
    metrics,
    inFlight: () => inflight.size,
    async close(graceMs = 30_000) {
      stopping = true
      stopKeepAlive()
      const grace = new Promise((r) => setTimeout(r, graceMs).unref())
      // first a moment in which keep-alive clients get "Connection: close" with their next answer
      // and go: server.close() drops idle connections, cutting a request already on its way
      await Promise.race([grace, new Promise((r) => setTimeout(r, DRAIN_MS).unref())])
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      // until none is left: a keep-alive connection may still bring a request after the stop began
      const done = (async () => {
        while (inflight.size) await Promise.allSettled([...inflight])
      })()
      await Promise.race([done, grace])
      server.closeAllConnections()
      await closed
    },
  }
}

/**
 * At most `max` connections from one address at once: one client opening idle sockets cannot
 * take every slot of maxConnections and lock the others (and the load balancer's probes) out.
 */
function limitPerAddress(server: Server, max: number): void {
  if (max <= 0) return
  const open = new Map<string, number>()
  server.on('connection', (socket) => {
    const a = socket.remoteAddress ?? ''
    const n = (open.get(a) ?? 0) + 1
    if (n > max) {
      socket.destroy()
      return
    }
    open.set(a, n)
    socket.once('close', () => {
      const left = (open.get(a) ?? 1) - 1
      if (left > 0) open.set(a, left)
      else open.delete(a)
    })
  })
}

let nextId = 0

async function answer(
  api: Api,
  metrics: Metrics,
  log: ServeLog,
  req: IncomingMessage,
  res: ServerResponse,
  stopping: () => boolean,
): Promise<void> {
  const started = process.hrtime.bigint()
  const id = (++nextId).toString(36)
  const ac = new AbortController()
  res.on('close', () => {
    if (!res.writableFinished) ac.abort()
  })
  metrics.inFlight++
  try {
    const { res: r, note } = await api.handle({
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      ...(req.headers.authorization !== undefined ? { authorization: req.headers.authorization } : {}),
      signal: ac.signal,
    })
    if (!res.destroyed) {
      // stopping: this answer is the connection's last, so a keep-alive client sends no other here
      if (stopping()) res.setHeader('connection', 'close')
      res.writeHead(r.status, { ...r.headers, 'content-length': Buffer.byteLength(r.body) })
      res.end(req.method === 'HEAD' ? undefined : r.body)
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    metrics.request(note.route, r.status, note.key, seconds)
    log({
      level: r.status >= 500 ? 'warn' : 'info',
      event: 'request',
      id,
      method: (req.method ?? '').slice(0, 10),
      route: note.route,
      status: r.status,
      ms: Math.round(seconds * 10_000) / 10,
      key: note.key,
      account: note.account,
      kind: note.kind,
      source: note.source,
      client: req.socket.remoteAddress,
      aborted: ac.signal.aborted || undefined,
    })
  } finally {
    metrics.inFlight--
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StoreError(ERR.STORE_UNAVAILABLE, `${label} did not answer within ${ms / 1000} s`)),
      ms,
    )
  })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}
