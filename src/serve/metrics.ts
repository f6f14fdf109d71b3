/**
 * The token service's Prometheus metrics (text format 0.0.4), kept in memory per replica:
 *
 *   mailkey_serve_requests_total{route,status,key}   requests (key: the key's name, never the key)
 *   mailkey_serve_request_duration_seconds{route}     a histogram
 *   mailkey_serve_tokens_total{source}                tokens handed out: memory, store, refreshed
 *   mailkey_serve_failures_total{kind}                problem documents sent, by kind
 *   mailkey_refreshes_total{outcome}                  refreshes this replica led: ok, needs_sign_in, transient, failed
 *   mailkey_serve_in_flight                           requests being answered
 *   mailkey_accounts{state}                           at scrape time, of the accounts the key may see
 *   mailkey_accounts_needing_sign_in
 *   mailkey_grant_horizon_seconds{account}            until the grant stops working unless used or renewed
 *   mailkey_access_token_expiry_seconds{account}      until the stored access token expires
 *
 * Labels hold route names, status codes, key names, kinds and account addresses: never a token,
 * a key, a hash or a server's text.
 *
 * Owns: counting and rendering. Must not: read the store itself (the API hands it the accounts).
 */
import type { AccountStatus } from '../broker/accounts.js'
import type { ProblemKind } from './problem.js'

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** a label value, escaped as the text format wants (backslash, quote, newline) */
const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
const labels = (l: Record<string, string>): string => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`)
  return parts.length ? `{${parts.join(',')}}` : ''
}

class Counter {
  readonly #m = new Map<string, number>()
  inc(l: Record<string, string>, by = 1): void {
    const k = labels(l)
    this.#m.set(k, (this.#m.get(k) ?? 0) + by)
  }
  lines(name: string, only?: (labels: string) => boolean): string[] {
    return [...this.#m].filter(([l]) => !only || only(l)).map(([l, v]) => `${name}${l} ${v}`)
  }
}

export type RefreshOutcome = 'ok' | 'needs_sign_in' | 'transient' | 'failed'

export class Metrics {
  readonly #requests = new Counter()
  readonly #tokens = new Counter()
  readonly #failures = new Counter()
  readonly #refreshes = new Counter()
  readonly #durations = new Map<string, { counts: number[]; sum: number; n: number }>()
  inFlight = 0

  request(route: string, status: number, key: string | undefined, seconds: number): void {
    this.#requests.inc({ route, status: String(status), key: key ?? '' })
    let d = this.#durations.get(route)
    if (!d) this.#durations.set(route, (d = { counts: BUCKETS.map(() => 0), sum: 0, n: 0 }))
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) d.counts[i] = (d.counts[i] ?? 0) + 1
    })
    d.sum += seconds
    d.n++
  }

  token(source: string): void {
    this.#tokens.inc({ source })
  }

  failure(kind: ProblemKind): void {
    this.#failures.inc({ kind })
  }

  refresh(outcome: RefreshOutcome): void {
    this.#refreshes.inc({ outcome })
  }

  /** `onlyKey`: show request counts of that key only (a key limited to some accounts asks) */
  render(accounts: AccountStatus[] | undefined, now: number, onlyKey?: string): string {
    const out: string[] = []
    const family = (name: string, type: string, help: string, lines: string[]): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines)
    }
    family(
      'mailkey_serve_requests_total',
      'counter',
      'Requests answered.',
      this.#requests.lines(
        'mailkey_serve_requests_total',
        onlyKey === undefined ? undefined : (l) => l.includes(`key="${esc(onlyKey)}"`),
      ),
    )
    family('mailkey_serve_request_duration_seconds', 'histogram', 'Time to answer a request.', this.#histogram())
    family(
      'mailkey_serve_tokens_total',
      'counter',
      'Access tokens handed out, by where they came from.',
      this.#tokens.lines('mailkey_serve_tokens_total'),
    )
    family(
      'mailkey_serve_failures_total',
      'counter',
      'Problem documents sent, by kind.',
      this.#failures.lines('mailkey_serve_failures_total'),
    )
    family(
      'mailkey_refreshes_total',
      'counter',
      'Refreshes this replica led, by outcome.',
      this.#refreshes.lines('mailkey_refreshes_total'),
    )
    family('mailkey_serve_in_flight', 'gauge', 'Requests being answered.', [`mailkey_serve_in_flight ${this.inFlight}`])
    if (accounts) out.push(...accountLines(accounts, now))
    return out.join('\n') + '\n'
  }

  #histogram(): string[] {
    const name = 'mailkey_serve_request_duration_seconds'
    const out: string[] = []
    for (const [route, d] of this.#durations) {
      BUCKETS.forEach((b, i) => out.push(`${name}_bucket${labels({ route, le: String(b) })} ${d.counts[i] ?? 0}`))
      out.push(`${name}_bucket${labels({ route, le: '+Inf' })} ${d.n}`)
      out.push(`${name}_sum${labels({ route })} ${d.sum}`, `${name}_count${labels({ route })} ${d.n}`)
    }
    return out
  }
}

function accountLines(accounts: AccountStatus[], now: number): string[] {
  const reauth = accounts.filter((a) => a.state === 'reauth').length
  const out = [
    '# HELP mailkey_accounts Accounts, by state.',
    '# TYPE mailkey_accounts gauge',
    `mailkey_accounts${labels({ state: 'active' })} ${accounts.length - reauth}`,
    `mailkey_accounts${labels({ state: 'reauth' })} ${reauth}`,
    '# HELP mailkey_accounts_needing_sign_in Accounts whose grant is dead: their owner must sign in again.',
    '# TYPE mailkey_accounts_needing_sign_in gauge',
    `mailkey_accounts_needing_sign_in ${reauth}`,
    '# HELP mailkey_grant_horizon_seconds Seconds until the grant stops working unless used or renewed.',
    '# TYPE mailkey_grant_horizon_seconds gauge',
  ]
  for (const a of accounts)
    if (a.grantHorizon)
      out.push(`mailkey_grant_horizon_seconds${labels({ account: a.email })} ${secondsUntil(a.grantHorizon.at, now)}`)
  out.push(
    '# HELP mailkey_access_token_expiry_seconds Seconds until the stored access token expires.',
    '# TYPE mailkey_access_token_expiry_seconds gauge',
  )
  for (const a of accounts)
    if (a.accessToken.expiresAt)
      out.push(
        `mailkey_access_token_expiry_seconds${labels({ account: a.email })} ${secondsUntil(a.accessToken.expiresAt, now)}`,
      )
  return out
}

const secondsUntil = (iso: string, now: number): number => Math.round((Date.parse(iso) - now) / 1000)
