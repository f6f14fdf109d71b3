/**
 * A host that holds no store, only the URL of a token service (`mailkey serve`) and an API key:
 * MAILKEY_STORE_URL=https://tokens.example:8443 and MAILKEY_API_KEY_FILE (or MAILKEY_API_KEY).
 * `mailkey token`, the library and `mailkey proxy` then ask the service for tokens.
 *
 * - https, verified (the system's roots, NODE_EXTRA_CA_CERTS, or MAILKEY_STORE_CA added to them);
 *   plain http only to a loopback address: the key and the tokens must not cross a network in clear.
 * - the service's problem documents become the same errors, with the same exit codes, as on the
 *   store's own host (77 sign-in needed, 75 try again, 78 configuration); its text is cleaned of
 *   control characters before it can reach a terminal.
 * - a service that cannot be reached, or a load balancer's 502/503/504, is "try again" (75).
 *
 * Owns: the HTTP client of the API and the problem -> error mapping. Must not: keep tokens anywhere.
 */
import { request as httpRequest, Agent as HttpAgent, type IncomingMessage } from 'node:http'
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https'
import { closeSync, constants as fsc, fstatSync, openSync, readFileSync } from 'node:fs'
import { rootCertificates } from 'node:tls'
import {
  ConfigError,
  ERR,
  InterruptedError,
  MailkeyError,
  ProtocolError,
  ReauthRequiredError,
  TransientError,
  UsageError,
  shortageCode,
  shortageText,
  type ErrorCode,
} from '../errors.js'
import { Secret } from '../core/secret.js'
import { isLoopbackHost } from '../core/net.js'
import { stripControls } from '../core/server-text.js'
import { shArg } from '../core/address.js'
import type { Env } from '../config/paths.js'

export interface ServiceTarget {
  /** the service's base URL (no credentials, no query) */
  base: URL
  /** the URL for messages */
  label: string
  key: Secret
  /** extra trusted certificates (MAILKEY_STORE_CA) */
  ca?: string
}

export { isServiceUrl } from './service-url.js'

const KEY_HINT =
  'Put the API key ("mailkey serve key add NAME" on a host with the store prints it) in a file only you can read, and name it in MAILKEY_API_KEY_FILE.'

/** The service a host uses, from MAILKEY_STORE_URL and MAILKEY_API_KEY(_FILE). Throws ConfigError when unusable. */
export function serviceTarget(env: Env): ServiceTarget {
  const raw = (env.MAILKEY_STORE_URL ?? '').trim()
  let base: URL
  try {
    base = new URL(raw)
  } catch {
    throw bad('it is not a URL')
  }
  if (base.username || base.password)
    throw bad('it must not carry a user or password; the API key goes in MAILKEY_API_KEY_FILE')
  if (base.search || base.hash) throw bad('it must not have a query or fragment')
  if (base.protocol === 'http:' && !isLoopbackHost(base.hostname))
    throw bad('plain http is accepted only for 127.0.0.1, ::1 and localhost: use https')
  if (!base.pathname.endsWith('/')) base.pathname += '/'
  const label = `${base.protocol}//${base.host}${base.pathname === '/' ? '' : base.pathname}`
  const ca = env.MAILKEY_STORE_CA ? readText(env.MAILKEY_STORE_CA, 'MAILKEY_STORE_CA', false) : undefined
  return { base, label, key: new Secret(apiKey(env, label)), ...(ca ? { ca } : {}) }
}

function bad(why: string): ConfigError {
  return new ConfigError(ERR.CONFIG_INVALID, `the token service URL (MAILKEY_STORE_URL) cannot be used: ${why}`, {
    hint: 'Set MAILKEY_STORE_URL=https://HOST:PORT (the address "mailkey serve" listens on).',
  })
}

function apiKey(env: Env, label: string): string {
  const file = env.MAILKEY_API_KEY_FILE
  const key = file ? readText(file, 'MAILKEY_API_KEY_FILE', true).trim() : env.MAILKEY_API_KEY?.trim()
  if (!key)
    throw new ConfigError(ERR.CONFIG_INVALID, `the token service ${label} needs an API key, and none is set`, {
      hint: KEY_HINT,
    })
  // one visible-ASCII word (RFC 6750 b64token is narrower): anything else cannot go in a header
  if (!/^[\x21-\x7e]+$/.test(key))
    throw new ConfigError(ERR.CONFIG_INVALID, `the API key for the token service ${label} is not one word`, {
      hint: KEY_HINT,
    })
  return key
}

function readText(path: string, name: string, secret: boolean): string {
  try {
    // followed on purpose (Kubernetes mounts secrets through symbolic links); never blocking on a
    // FIFO planted there, and only a regular file
    const fd = openSync(path, fsc.O_RDONLY | fsc.O_NONBLOCK)
    try {
      const st = fstatSync(fd)
      if (!st.isFile())
        throw new ConfigError(ERR.CONFIG_INVALID, `${name} "${path}" is not a regular file`, {
          hint: `Point ${name} at a file.`,
        })
      if (secret && (st.mode & 0o077) !== 0)
        throw new ConfigError(ERR.STORE_PERMISSIONS, `the API key file "${path}" can be read by others`, {
          hint: `Run "chmod 600 ${shArg(path)}": the key lets its holder take the accounts' tokens.`,
        })
      return readFileSync(fd, 'utf8')
    } finally {
      closeSync(fd)
    }
  } catch (e) {
    if (e instanceof MailkeyError) throw e
    throw new ConfigError(
      ERR.CONFIG_INVALID,
      `cannot read ${name} "${path}": ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        hint: `Check that ${name} names a file this user can read.`,
      },
    )
  }
}

export interface ServiceResponse {
  status: number
  body: unknown
  retryAfter?: string
}

const TIMEOUT_MS = 60_000

/** The API's client: GET a path, a JSON body back, problems thrown as MailkeyErrors. */
export class ServiceClient {
  readonly target: ServiceTarget
  readonly #agent: HttpAgent

  constructor(target: ServiceTarget) {
    this.target = target
    const https = target.base.protocol === 'https:'
    this.#agent = https
      ? new HttpsAgent({ keepAlive: true, ...(target.ca ? { ca: [...rootCertificates, target.ca] } : {}) })
      : new HttpAgent({ keepAlive: true })
  }

  /** GET `path` (relative to the base); `account` names the account in errors. */
  async get(path: string, account?: string, signal?: AbortSignal): Promise<unknown> {
    const r = await this.#send(new URL(path, this.target.base), signal)
    if (r.status === 200) return r.body
    throw this.errorOf(r, account)
  }

  #send(url: URL, signal?: AbortSignal): Promise<ServiceResponse> {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest
    return new Promise((resolve, reject) => {
      // `timeout` is per idle gap: a service trickling its answer byte by byte must not stall the
      // caller for ever, so the whole exchange has a deadline too
      let deadline: NodeJS.Timeout | undefined
      const ok = (r: ServiceResponse): void => {
        clearTimeout(deadline)
        resolve(r)
      }
      const fail = (e: Error): void => {
        clearTimeout(deadline)
        reject(this.#networkError(e))
      }
      const req = send(
        url,
        {
          method: 'GET',
          agent: this.#agent,
          headers: { authorization: `Bearer ${this.target.key.reveal()}`, accept: 'application/json' },
          timeout: TIMEOUT_MS,
          ...(signal ? { signal } : {}),
        },
        // a body cut short (a replica killed mid-answer, a reset) is "try again", like no answer
        (res) => collect(res).then(ok, fail),
      )
      const timedOut = (): void => void req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }))
      deadline = setTimeout(timedOut, TIMEOUT_MS)
      req.on('timeout', timedOut)
      req.on('error', fail)
      req.end()
    })
  }

  #networkError(e: Error & { code?: string }): MailkeyError {
    if (e.name === 'AbortError') return new InterruptedError()
    const code = e.code ?? 'error'
    const shortage = shortageCode(e)
    if (shortage)
      return new TransientError(
        ERR.RESOURCES_EXHAUSTED,
        `cannot ask the token service ${this.target.label}: ${shortageText(shortage)}`,
        {
          hint: 'Nothing was lost; try again in a moment.',
        },
      )
    if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/i.test(code))
      return new ConfigError(
        ERR.CONFIG_INVALID,
        `the token service ${this.target.label} has a certificate this host does not trust (${code})`,
        {
          hint: 'Give its CA certificate in MAILKEY_STORE_CA (a PEM file), or fix the service certificate.',
        },
      )
    return new TransientError(
      ERR.STORE_UNAVAILABLE,
      `the token service ${this.target.label} cannot be reached (${code})`,
      {
        hint: 'Nothing was lost; try again in a moment. Check that "mailkey serve" runs there and the address is right.',
      },
    )
  }

  /** The error a non-200 answer is. */
  errorOf(r: ServiceResponse, account?: string): MailkeyError {
    const p = (typeof r.body === 'object' && r.body !== null ? r.body : {}) as Record<string, unknown>
    const detail = clean(p.detail) ?? `HTTP ${r.status}`
    const acct = clean(p.account) ?? account
    const o = { ...(acct ? { account: acct } : {}), status: r.status }
    const kind = typeof p.type === 'string' ? p.type.replace(/^urn:mailkey:problem:/, '') : ''
    const svc = `the token service ${this.target.label}`
    const code = knownCode(p.code)
    switch (kind) {
      case 'needs-sign-in':
        return new ReauthRequiredError(code ?? ERR.REAUTH_REQUIRED, detail, {
          ...o,
          // the command is made here, never taken from the service: it is a command the user runs
          hint: `Sign in again on a host that has the store: run "mailkey add ${shArg(account ?? acct ?? '<email>')}" there.`,
        })
      case 'unavailable':
        return new TransientError(code ?? ERR.STORE_UNAVAILABLE, detail, {
          ...o,
          retryAfterSec: Number(p.retry_after ?? r.retryAfter) || 5,
          hint: 'Nothing was lost; try again in a moment.',
        })
      case 'unknown-account':
        return new ConfigError(ERR.ACCOUNT_UNKNOWN, `${svc} has no account ${acct ? `"${acct}"` : ''}`.trim(), {
          ...o,
          hint: `Sign it in on a host that has the store ("mailkey add ${shArg(acct ?? '<email>')}"), or check the address.`,
        })
      case 'unauthorized':
        return new ConfigError(ERR.CONFIG_INVALID, `${svc} refused the API key: ${detail}`, { ...o, hint: KEY_HINT })
      case 'not-allowed':
        return new ConfigError(ERR.CONFIG_INVALID, `${svc} refused: ${detail}`, {
          ...o,
          hint: 'Ask for a key that may use this account ("mailkey serve key add NAME --accounts ...").',
        })
      case 'bad-request':
        return new UsageError(`${svc} refused the request: ${detail}`, o)
      case 'not-found':
      case 'method-not-allowed':
        return new ConfigError(ERR.CONFIG_INVALID, `${svc} does not serve the mailkey API at that address`, {
          ...o,
          hint: 'Set MAILKEY_STORE_URL to the address "mailkey serve" listens on (scheme, host, port and any path prefix).',
        })
    }
    if ([502, 503, 504].includes(r.status) || (kind === 'failed' && r.status >= 500 && p.exit_code === 75))
      return new TransientError(ERR.STORE_UNAVAILABLE, `${svc} answered HTTP ${r.status}: ${detail}`, {
        ...o,
        hint: 'Nothing was lost; try again in a moment.',
      })
    // the service's own trouble (its store locked, unreadable, misconfigured): fixed there, not here
    if (p.exit_code === 78 || p.exit_code === 77 || p.exit_code === 74)
      return new ConfigError(code ?? ERR.CONFIG_INVALID, `${svc} cannot serve this: ${detail}`, {
        ...o,
        hint: 'The service must be fixed (its log says more); nothing is wrong on this host.',
      })
    return new ProtocolError(code ?? ERR.OAUTH_PROTOCOL, `${svc} failed: ${detail}`, o)
  }

  close(): void {
    this.#agent.destroy()
  }
}

const CODES = new Set<string>(Object.values(ERR))
const knownCode = (v: unknown): ErrorCode | undefined =>
  typeof v === 'string' && CODES.has(v) ? (v as ErrorCode) : undefined
const clean = (v: unknown): string | undefined =>
  typeof v === 'string' && v ? stripControls(v).slice(0, 500) : undefined

const MAX_BODY = 1 << 20

function collect(res: IncomingMessage): Promise<ServiceResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    res.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_BODY) res.destroy(new Error('answer too large'))
      else chunks.push(c)
    })
    res.on('error', reject)
    res.on('end', () => {
      let body: unknown
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        body = undefined
      }
      const ra = res.headers['retry-after']
      resolve({ status: res.statusCode ?? 0, body, ...(typeof ra === 'string' ? { retryAfter: ra } : {}) })
    })
  })
}
