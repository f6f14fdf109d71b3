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
import { stripControls } from '../core/server-text.js'
import { shArg } from '../core/address.js'

export { isServiceUrl } from './service-url.js'
export { serviceTarget, KEY_HINT, type ServiceTarget } from './service-target.js'
import { KEY_HINT, type ServiceTarget } from './service-target.js'

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
