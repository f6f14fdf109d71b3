/**
 * What a host without a store gets from a token service (service-client.ts), in the shapes the
 * rest of mailkey uses: AccessToken for getAccessToken, AccountStatus for status and list, and an
 * AccountRecord without any secret for the proxy (the account's servers, SASL user and mechanism).
 *
 * Owns: turning API bodies into those shapes, checking them. Must not: keep tokens, or sign in.
 */
import { ERR, ProtocolError, UsageError } from '../errors.js'
import { stripControls } from '../core/server-text.js'
import { Secret } from '../core/secret.js'
import { shArg } from '../core/address.js'
import type { AccessToken, GetTokenOptions } from '../broker/access-token.js'
import type { AccountStatus } from '../broker/accounts.js'
import type { AccountRecord } from '../domain/account.js'
import type { SaslMechanism } from '../providers/types.js'
import { ServiceClient } from './service-client.js'
import { TOKEN } from './service-target.js'

const path = (account: string): string => `v1/accounts/${encodeURIComponent(account)}`

export class RemoteSource {
  readonly client: ServiceClient

  constructor(client: ServiceClient) {
    this.client = client
  }

  get label(): string {
    return this.client.target.label
  }

  /** What a host using a service cannot do: sign-ins and removals happen where the store is. */
  notHere(what: string, account?: string): UsageError {
    return notHere(this.label, what, account)
  }

  async getAccessToken(account: string, o: GetTokenOptions = {}): Promise<AccessToken> {
    const q = new URLSearchParams()
    if (o.minValiditySec !== undefined) q.set('min_ttl', String(o.minValiditySec))
    if (o.forceRefresh) q.set('force_refresh', '1')
    const b = obj(
      await this.client.get(`${path(account)}/token${q.size ? `?${q}` : ''}`, account, o.signal),
      this.label,
    )
    // a token is printed and put in SASL as it is: visible ASCII only (RFC 6750 b64token)
    if (typeof b.access_token !== 'string' || !TOKEN.test(b.access_token)) throw malformed(this.label)
    // what goes into a SASL string or a terminal must be plain: no controls, spaces or commas
    const user = str(b.user) ?? account
    const named = str(b.account) ?? account
    if (!PRINTABLE.test(user) || named.toLowerCase() !== account.toLowerCase()) throw malformed(this.label)
    const t: AccessToken = {
      account: named,
      token: new Secret(b.access_token),
      sasl: mech(b.sasl_mechanism),
      user,
      refreshed: false,
    }
    const exp = Date.parse(str(b.expires_at) ?? '')
    if (Number.isFinite(exp)) t.expiresAt = exp
    if (str(b.scope)) t.scope = str(b.scope)
    return t
  }

  async status(account: string): Promise<AccountStatus> {
    return this.#status(obj(deepClean(await this.client.get(path(account), account)), this.label))
  }

  async list(): Promise<{ accounts: AccountStatus[]; broken: { file: string; message: string; code: string }[] }> {
    const b = obj(deepClean(await this.client.get('v1/accounts')), this.label)
    if (!Array.isArray(b.accounts)) throw malformed(this.label)
    return { accounts: b.accounts.map((a) => this.#status(obj(a, this.label))), broken: [] }
  }

  /** The account's record without secrets (undefined: the service has no such account). */
  async record(account: string): Promise<AccountRecord | undefined> {
    let s: AccountStatus
    try {
      s = await this.status(account)
    } catch (e) {
      if ((e as { code?: string }).code === ERR.ACCOUNT_UNKNOWN) return undefined
      throw e
    }
    return {
      v: 1,
      settings: {
        email: s.email,
        ...(s.mailbox ? { mailbox: s.mailbox } : {}),
        provider: s.provider,
        ...(s.tenant ? { tenant: s.tenant } : {}),
        clientId: s.clientId,
        scopes: s.scopes,
        endpoints: {},
        servers: s.servers,
        sasl: s.sasl as SaslMechanism,
        flow: s.flow as AccountRecord['settings']['flow'],
      },
      grant: {
        ...(s.grantedScope ? { scope: s.grantedScope } : {}),
        ...(s.identity ? { identity: s.identity } : {}),
        grantedAt: Date.parse(s.grantedAt) || 0,
      },
      state: s.state,
      updatedAt: 0,
    } as AccountRecord
  }

  #status(raw: Record<string, unknown>): AccountStatus {
    const b = deepClean(raw) as Record<string, unknown>
    const isObj = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v)
    // what `mailkey status` and the proxy read from it must be there, in its shape
    const shaped =
      ['email', 'provider', 'clientId', 'flow', 'sasl', 'grantedAt'].every((k) => typeof b[k] === 'string') &&
      (b.state === 'active' || b.state === 'reauth') &&
      Array.isArray(b.scopes) &&
      ['servers', 'accessToken', 'refreshToken'].every((k) => isObj(b[k]))
    if (!shaped) throw malformed(this.label)
    const store =
      typeof (b.storage as { store?: unknown })?.store === 'string' ? (b.storage as { store: string }).store : undefined
    return {
      ...(b as unknown as AccountStatus),
      storage: { kind: 'service', service: this.label, ...(store ? { store } : {}) },
    }
  }
}

/** What a host using a service cannot do: sign-ins and removals happen where the store is. */
export function notHere(label: string, what: string, account?: string): UsageError {
  return new UsageError(`this host uses the token service ${label}: ${what} on a host that has the store`, {
    ...(account ? { account } : {}),
    hint: account
      ? `Run "mailkey ${what.split(' ')[0]} ${shArg(account)}" there (with its MAILKEY_STORE_URL and store key).`
      : 'Run it there (with its MAILKEY_STORE_URL and store key).',
  })
}

const obj = (v: unknown, label: string): Record<string, unknown> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed(label)
  return v as Record<string, unknown>
}
/** one token-like or address-like value: printable ASCII and beyond, no space, comma or control */
const PRINTABLE = /^[^\x00-\x20\x7f-\x9f,]{1,16384}$/u
const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined)
const mech = (v: unknown): SaslMechanism => (v === 'OAUTHBEARER' ? 'OAUTHBEARER' : 'XOAUTH2')
const malformed = (label: string): ProtocolError =>
  new ProtocolError(ERR.OAUTH_PROTOCOL, `the token service ${label} gave an answer mailkey cannot use`, {
    hint: 'Check that MAILKEY_STORE_URL points at "mailkey serve" (of the same or a newer version).',
  })

/** Every string of a service's answer without control characters: it may reach a terminal. */
function deepClean(v: unknown): unknown {
  if (typeof v === 'string') return stripControls(v)
  if (Array.isArray(v)) return v.map(deepClean)
  if (typeof v === 'object' && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, deepClean(x)]))
  return v
}
