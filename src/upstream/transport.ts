/**
 * A line-oriented connection to a real mail server, for `mailkey test` (probe/) and the proxy's
 * upstream login (proxy/upstream.ts): implicit TLS (RFC 8314) or plain TCP upgraded with
 * STARTTLS/STLS, certificate checks on by default, an optional private CA, and bounded lines and
 * time. Also the server URL -> address rule both use.
 *
 * The login dialogues (dialogues.ts) see only the `LineTransport` interface, so they run against
 * a scripted fake in unit tests; this file is the only one in upstream/ with sockets.
 *
 * Owns: sockets and TLS, server URLs. Must not: know any mail protocol.
 */
import { descriptorShortage } from '../core/resources.js'
import { shortageText } from '../errors.js'
import { connect as netConnect, type LookupFunction, type Socket } from 'node:net'
import { lookup as dnsLookup } from 'node:dns'
import {
  connect as tlsConnect,
  createSecureContext,
  rootCertificates,
  type ConnectionOptions,
  type SecureContext,
  type TLSSocket,
} from 'node:tls'
import { readFileSync, statSync } from 'node:fs'

export interface LineTransport {
  /** the next CRLF-terminated line, without the CRLF */
  readLine(): Promise<string>
  write(line: string): Promise<void>
  /** bytes as they are, no line end added (a message's data after DATA, `mailkey send`) */
  writeBytes(data: Buffer): Promise<void>
  /** upgrade to TLS in place (after STARTTLS/STLS was accepted) */
  startTls(): Promise<void>
  /** bytes received but not yet read as lines (STARTTLS injection check, RFC 3207 §4.1 spirit) */
  buffered(): number
  close(): void
  /**
   * Hand the raw socket over (the proxy splices it after login): stops line framing and returns
   * the socket with any bytes received but not yet read.
   */
  detach(): { socket: Socket | TLSSocket; pending: Buffer }
  readonly secure: boolean
}

export interface ServerAddress {
  host: string
  port: number
  /** true: TLS from the first byte; false: plain, then STARTTLS */
  implicitTls: boolean
}

const IMPLICIT: Record<string, boolean> = {
  imaps: true,
  pop3s: true,
  smtps: true,
  imap: false,
  pop3: false,
  smtp: false,
}

/** A normalised server URL (providers/resolve.ts) as the address to connect to. */
export function parseServer(url: string): ServerAddress {
  const u = new URL(url)
  const scheme = u.protocol.replace(/:$/, '')
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port), implicitTls: IMPLICIT[scheme] === true }
}

export const MAX_LINE = 64 * 1024

export class ProbeNetworkError extends Error {
  readonly code: string | undefined
  constructor(message: string, code?: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ProbeNetworkError'
    this.code = code
  }
}

export interface ConnectOptions {
  /** PEM file of a private CA to trust for this server (in addition to the system's) */
  caFile?: string
  timeoutMs?: number
  signal?: AbortSignal
  /** the host name lookup (default: dns.lookup, the system's resolver); tests fake it at the edge */
  lookup?: LookupFunction
}

/**
 * One TLS context per private CA, shared by every connection: a context built per connection
 * copies all the system's root certificates each time (~1 MB and ~35 ms; bench/README.md).
 */
const contexts = new Map<string, SecureContext>()
function contextFor(caPem: string): SecureContext {
  let ctx = contexts.get(caPem)
  if (!ctx) {
    ctx = createSecureContext({ ca: [caPem, ...rootCertificates], minVersion: 'TLSv1.2' })
    if (contexts.size > 32) contexts.clear()
    contexts.set(caPem, ctx)
  }
  return ctx
}

/**
 * An account's CA file, read again only when it changed (size, mtime, inode). Synchronous: it is
 * on the critical path of every proxy login (the TLS handshake waits for it), and a stat is a few
 * µs where an asynchronous read costs a few thread-pool round trips (bench/README.md, "Proxy").
 */
const caFiles = new Map<string, { stamp: string; pem: string }>()
function readCaFile(path: string): string {
  let stamp: string
  try {
    const st = statSync(path)
    stamp = `${st.size}:${st.mtimeMs}:${st.ino}`
  } catch (e) {
    throw new ProbeNetworkError(
      `cannot read the CA file "${path}" (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      'CA_FILE',
      {
        cause: e,
      },
    )
  }
  const hit = caFiles.get(path)
  if (hit && hit.stamp === stamp) return hit.pem
  let pem: string
  try {
    pem = readFileSync(path, 'utf8')
  } catch (e) {
    throw new ProbeNetworkError(
      `cannot read the CA file "${path}" (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      'CA_FILE',
      {
        cause: e,
      },
    )
  }
  if (caFiles.size > 64) caFiles.clear()
  caFiles.set(path, { stamp, pem })
  return pem
}

/** The TLS context for an account's private CA file (with the system's CAs), for HTTPS to its servers (Graph). */
export function secureContextForCaFile(caFile: string): SecureContext {
  return contextFor(readCaFile(caFile))
}

export async function openTransport(addr: ServerAddress, opts: ConnectOptions = {}): Promise<LineTransport> {
  const ca = opts.caFile ? readCaFile(opts.caFile) : undefined
  const timeoutMs = opts.timeoutMs ?? 15_000
  const tlsOptions = (socket?: Socket): ConnectionOptions => ({
    host: addr.host,
    port: addr.port,
    ...(socket ? { socket } : {}),
    // SNI must be a host name, never an IP literal (RFC 6066 §3).
    ...(/^[\d.]+$|:/.test(addr.host) ? {} : { servername: addr.host }),
    // Upstream TLS is verified: the system's CAs, plus the account's own CA when it has one.
    ...(ca ? { secureContext: contextFor(ca) } : {}),
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
  })
  if (opts.signal?.aborted) throw new ProbeNetworkError('interrupted', 'ABORT_ERR')
  const socket = await connectSocket(addr, tlsOptions, timeoutMs, opts.signal, opts.lookup ?? dnsLookup)
  return new SocketLines(socket, addr, tlsOptions, timeoutMs)
}

/** TCP (or TLS from the first byte) within the timeout; an abandoned attempt leaves no connection behind. */
function connectSocket(
  addr: ServerAddress,
  tlsOptions: () => ConnectionOptions,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  lookup: LookupFunction,
): Promise<Socket | TLSSocket> {
  return new Promise<Socket | TLSSocket>((resolve, reject) => {
    const s = addr.implicitTls
      ? tlsConnect({ ...tlsOptions(), lookup })
      : netConnect({ host: addr.host, port: addr.port, lookup })
    // Mail dialogues are small request/reply lines: never hold one back for Nagle's algorithm.
    s.setNoDelay(true)
    const settle = (e?: Error): void => {
      clearTimeout(t)
      signal?.removeEventListener('abort', onAbort)
      if (!e) return resolve(s)
      // An abandoned attempt must not leave a half-open connection to the server behind.
      s.destroy()
      reject(e)
    }
    const onAbort = (): void => settle(new ProbeNetworkError('interrupted', 'ABORT_ERR'))
    signal?.addEventListener('abort', onAbort, { once: true })
    const t = setTimeout(
      () =>
        settle(
          new ProbeNetworkError(
            `cannot connect to ${addr.host}:${addr.port} within ${Math.round(timeoutMs / 1000)} s`,
            'ETIMEDOUT',
          ),
        ),
      timeoutMs,
    )
    s.once(addr.implicitTls ? 'secureConnect' : 'connect', () => settle())
    s.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOTFOUND') return settle(netError(e, addr))
      void lookupAgain(lookup, addr.host).then((found) => settle(found ? lookupOutage(e, addr) : netError(e, addr)))
    })
  })
}

/**
 * "No such host" is a verdict only if it holds a moment later: glibc answers ENOTFOUND when the
 * lookup could not open a file or socket (core/resources.ts), and by the time the error is
 * handled the descriptor table may have room again. A name that resolves on a second try was not
 * wrong, so the first failure is reported as transient (issue 11, item 5).
 */
function lookupAgain(lookup: LookupFunction, host: string): Promise<boolean> {
  return new Promise((resolve) => lookup(host, {}, (err) => resolve(!err)))
}

function lookupOutage(e: NodeJS.ErrnoException, addr: ServerAddress): ProbeNetworkError {
  return new ProbeNetworkError(
    `cannot look up ${addr.host} right now (it resolved on a second try: a local outage, not the name)`,
    'EAI_AGAIN',
    { cause: e },
  )
}

/** CRLF line framing over a connected socket, with a per-read timeout and an in-place TLS upgrade. */
class SocketLines implements LineTransport {
  #socket: Socket | TLSSocket
  #secure: boolean
  #buf: Buffer = Buffer.alloc(0)
  readonly #lines: string[] = []
  #waiter: { resolve: (l: string) => void; reject: (e: Error) => void } | undefined
  #failure: Error | undefined
  #timer: NodeJS.Timeout | undefined
  readonly #addr: ServerAddress
  readonly #tlsOptions: (socket?: Socket) => ConnectionOptions
  readonly #timeoutMs: number
  readonly #onData = (chunk: Buffer): void => this.#receive(chunk)

  constructor(
    socket: Socket | TLSSocket,
    addr: ServerAddress,
    tlsOptions: (socket?: Socket) => ConnectionOptions,
    timeoutMs: number,
  ) {
    this.#socket = socket
    this.#secure = addr.implicitTls
    this.#addr = addr
    this.#tlsOptions = tlsOptions
    this.#timeoutMs = timeoutMs
    this.#attach(socket)
  }

  get secure(): boolean {
    return this.#secure
  }

  #fail(e: Error): void {
    if (!this.#failure) this.#failure = e
    if (this.#waiter) {
      const w = this.#waiter
      this.#waiter = undefined
      w.reject(this.#failure)
    }
  }

  #receive(chunk: Buffer): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk
    let nl
    while ((nl = this.#buf.indexOf(0x0a)) >= 0) {
      const line = this.#buf.subarray(0, nl).toString('utf8').replace(/\r$/, '')
      this.#buf = this.#buf.subarray(nl + 1)
      if (this.#waiter) {
        const w = this.#waiter
        this.#waiter = undefined
        w.resolve(line)
      } else {
        this.#lines.push(line)
      }
    }
    if (this.#buf.length > MAX_LINE)
      this.#fail(new ProbeNetworkError(`the server sent a line longer than ${MAX_LINE} bytes`))
  }

  #attach(s: Socket | TLSSocket): void {
    const addr = this.#addr
    s.on('data', this.#onData)
    s.on('error', (e: NodeJS.ErrnoException) => this.#fail(netError(e, addr)))
    s.on('close', () =>
      this.#fail(new ProbeNetworkError(`${addr.host}:${addr.port} closed the connection`, 'ECONNRESET')),
    )
  }

  #detachListeners(): void {
    this.#socket.removeListener('data', this.#onData)
    this.#socket.removeAllListeners('close')
    this.#socket.removeAllListeners('error')
  }

  #armTimer(): void {
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#fail(
        new ProbeNetworkError(
          `${this.#addr.host}:${this.#addr.port} did not answer within ${Math.round(this.#timeoutMs / 1000)} s`,
          'ETIMEDOUT',
        ),
      )
      this.#socket.destroy()
    }, this.#timeoutMs)
  }

  readLine(): Promise<string> {
    const l = this.#lines.shift()
    if (l !== undefined) return Promise.resolve(l)
    if (this.#failure) return Promise.reject(this.#failure)
    this.#armTimer()
    return new Promise<string>((resolve, reject) => {
      this.#waiter = {
        resolve: (v) => {
          clearTimeout(this.#timer)
          resolve(v)
        },
        reject: (e) => {
          clearTimeout(this.#timer)
          reject(e)
        },
      }
    })
  }

  write(line: string): Promise<void> {
    return this.writeBytes(Buffer.from(line + '\r\n', 'utf8'))
  }

  writeBytes(data: Buffer): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure)
    return new Promise((resolve, reject) =>
      this.#socket.write(data, (e) => (e ? reject(netError(e as NodeJS.ErrnoException, this.#addr)) : resolve())),
    )
  }

  buffered(): number {
    return this.#buf.length + this.#lines.reduce((n, l) => n + l.length + 2, 0)
  }

  async startTls(): Promise<void> {
    const plain = this.#socket
    this.#detachListeners()
    this.#buf = Buffer.alloc(0)
    this.#lines.length = 0
    this.#socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect(this.#tlsOptions(plain as Socket))
      s.once('secureConnect', () => resolve(s))
      s.once('error', (e: NodeJS.ErrnoException) => reject(netError(e, this.#addr)))
    })
    this.#secure = true
    this.#attach(this.#socket)
  }

  close(): void {
    clearTimeout(this.#timer)
    this.#socket.destroy()
  }

  detach(): { socket: Socket | TLSSocket; pending: Buffer } {
    clearTimeout(this.#timer)
    this.#detachListeners()
    const pending = Buffer.concat([...this.#lines.map((l) => Buffer.from(l + '\r\n')), this.#buf])
    this.#lines.length = 0
    this.#buf = Buffer.alloc(0)
    return { socket: this.#socket, pending }
  }
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_NOT_YET_VALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'EPROTO',
])

export function isTlsCode(code: string | undefined): boolean {
  return code !== undefined && (TLS_CODES.has(code) || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS'))
}

function netError(e: NodeJS.ErrnoException, addr: ServerAddress): ProbeNetworkError {
  const where = `${addr.host}:${addr.port}`
  // glibc reports "no such host" when the lookup itself could not open a file or socket: check
  // whether this process is out of descriptors before blaming the host name (core/resources.ts).
  const shortage = e.code === 'ENOTFOUND' ? descriptorShortage() : undefined
  if (shortage)
    return new ProbeNetworkError(`cannot look up ${addr.host}: ${shortageText(shortage)}`, shortage, { cause: e })
  const code = e.code
  if (isTlsCode(code)) return new ProbeNetworkError(`TLS with ${where} failed: ${e.message}`, code, { cause: e })
  return new ProbeNetworkError(`cannot talk to ${where}${code ? ` (${code})` : ''}: ${e.message}`, code, { cause: e })
}
