/**
 * Turns what the user said (flags, env, config providers) into the account settings to sign in
 * with: one AccountSettings per candidate client id, in the order to try them.
 *
 * Owns: precedence (explicit option > config provider > built-in preset) and validation of
 * server URLs. Must not: do network I/O (discovery is passed in by the caller).
 */
import { domainToASCII } from 'node:url'
import { ConfigError, ERR, UsageError } from '../errors.js'
import type { AccountEndpoints, AccountSettings, SendMode } from '../domain/account.js'
import { BUILTIN_PROVIDERS, GRAPH_DEFAULT, providerForDomain } from './registry.js'
import type { ClientCandidate, Flow, Provider, SaslMechanism } from './types.js'
import { shArg } from '../core/address.js'

/** What a caller may say about an account at sign-in (all optional but the address). */
export interface AccountOptions {
  email: string
  /** built-in preset name or a [providers.NAME] from config.toml */
  provider?: string
  issuer?: string
  authorizeUrl?: string
  tokenUrl?: string
  deviceUrl?: string
  revocationUrl?: string
  clientId?: string
  clientSecret?: string
  clientAuth?: 'post' | 'basic'
  tenant?: string
  scopes?: string[]
  imapUrl?: string
  popUrl?: string
  smtpUrl?: string
  ca?: string
  sasl?: SaslMechanism
  /** a shared mailbox to open with this account's sign-in (the SASL user) */
  mailbox?: string
  /** the user the provider signs this account in as, when it is not the account's address (an alias) */
  signInAs?: string
  /** also ask consent for Microsoft Graph Mail.Send and submit mail through Graph (issue 16) */
  graph?: boolean
  /** the Graph API base instead of the provider's (tests, national clouds) */
  graphUrl?: string
  /** how the account submits mail (default: graph with --graph, else the provider's) */
  send?: SendMode
}

export const SERVER_SCHEMES = {
  imap: { implicit: 'imaps', starttls: 'imap', ports: { imaps: 993, imap: 143 } },
  pop: { implicit: 'pop3s', starttls: 'pop3', ports: { pop3s: 995, pop3: 110 } },
  smtp: { implicit: 'smtps', starttls: 'smtp', ports: { smtps: 465, smtp: 587 } },
} as const

/** `imaps://host:993` = implicit TLS (RFC 8314), `imap://host` = STARTTLS required. */
export function normaliseServerUrl(kind: keyof typeof SERVER_SCHEMES, raw: string): string {
  const spec = SERVER_SCHEMES[kind]
  // never echo a password back: "imaps://me:secret@host" is shown as "imaps://***@host"
  const url = raw.replace(/\/\/[^/?#]*@/, '//***@')
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new UsageError(
      `the ${kind} server "${url}" is not a URL; write it like ${spec.implicit}://host:${spec.ports[spec.implicit as keyof typeof spec.ports]}`,
    )
  }
  const scheme = u.protocol.replace(/:$/, '')
  if (scheme !== spec.implicit && scheme !== spec.starttls) {
    throw new UsageError(
      `the ${kind} server "${url}" must start with ${spec.implicit}:// (TLS) or ${spec.starttls}:// (STARTTLS)`,
    )
  }
  if (!u.hostname) throw new UsageError(`the ${kind} server "${url}" has no host name`)
  // The host goes into client configurations (recipes) and messages: a DNS name, IPv4 or [IPv6]
  // only (RFC 1123 §2.1), never shell or INI syntax that a URL parser lets through for an unknown scheme.
  const host = asciiHost(u.hostname)
  if (!HOST_NAME.test(host)) {
    throw new UsageError(
      `the ${kind} server ${JSON.stringify(url)} does not have a valid host name (letters, digits, "-" and "." only, or an IP address)`,
    )
  }
  if ((u.pathname && u.pathname !== '/') || u.search || u.username || u.password) {
    throw new UsageError(`the ${kind} server "${url}" must be just scheme://host:port`)
  }
  const port = u.port ? Number(u.port) : spec.ports[scheme as keyof typeof spec.ports]
  return `${scheme}://${host}:${port}`
}

/** An internationalised host name in its ASCII form (IDNA; a mail:// style URL leaves it percent-encoded). */
function asciiHost(hostname: string): string {
  if (!/%|[^\x00-\x7f]/.test(hostname)) return hostname
  let decoded: string
  try {
    decoded = decodeURIComponent(hostname)
  } catch {
    return hostname
  }
  return domainToASCII(decoded) || hostname
}

/** a DNS name (LDH labels, "_" tolerated as some internal names use it), an IPv4 address, or [IPv6] */
const HOST_NAME =
  /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$|^\[[0-9A-Fa-f:.]+\]$/

/**
 * The provider called `name`: a [providers.NAME] of config.toml first, then a built-in preset (so a
 * config section replaces the preset of the same name, docs/providers.md). The one rule for every
 * lookup by name: sign-in, env accounts and grant policies (broker.grantPolicy).
 */
export function lookupProvider(name: string, configProviders: ReadonlyMap<string, Provider>): Provider | undefined {
  return configProviders.get(name) ?? BUILTIN_PROVIDERS.get(name.toLowerCase())
}

export function findProvider(name: string, configProviders: ReadonlyMap<string, Provider>): Provider {
  const p = lookupProvider(name, configProviders)
  if (!p) {
    const known = [...BUILTIN_PROVIDERS.keys(), ...configProviders.keys()].join(', ')
    throw new UsageError(`unknown provider "${name}" (known: ${known})`, {
      hint: 'Define it as [providers.NAME] in config.toml, or pass --issuer URL.',
    })
  }
  return p
}

/** The provider for an address: named, from explicit endpoints, or guessed from the domain. */
export function chooseProvider(
  opts: AccountOptions,
  configProviders: ReadonlyMap<string, Provider>,
  mxGuess?: Provider,
): Provider | undefined {
  if (opts.provider) return findProvider(opts.provider, configProviders)
  if (opts.issuer || opts.tokenUrl) return undefined // a custom server
  return providerForDomain(opts.email, configProviders.values()) ?? providerForDomain(opts.email) ?? mxGuess
}

function applyTenant(url: string | undefined, tenant: string | undefined): string | undefined {
  if (url === undefined) return undefined
  if (!url.includes('{tenant}')) return url
  return url.replaceAll('{tenant}', encodeURIComponent(tenant ?? 'common'))
}

const TENANT_RE =
  /^(common|organizations|consumers|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-z0-9-]+(\.[a-z0-9-]+)+)$/i

/**
 * Settings per candidate client id, in try order. `discovered` fills endpoints the provider or
 * the options leave out.
 */
export function candidateSettings(
  opts: AccountOptions,
  provider: Provider | undefined,
  flow: AccountSettings['flow'],
  discovered?: AccountEndpoints,
): AccountSettings[] {
  const email = opts.email
  if (opts.tenant !== undefined && !TENANT_RE.test(opts.tenant)) {
    throw new UsageError(
      `"${opts.tenant}" is not a tenant: use common, organizations, consumers, a tenant id (GUID) or a domain`,
    )
  }
  if (opts.tenant !== undefined && !Object.values(provider?.endpoints ?? {}).some((u) => u?.includes('{tenant}'))) {
    throw new UsageError(
      `--tenant applies to Microsoft accounts; ${provider ? `the provider "${provider.name}"` : 'this server'} has no tenants`,
    )
  }
  const tenant = opts.tenant ?? provider?.defaultTenant
  const pe = provider?.endpoints ?? {}
  const endpoints = accountEndpoints(opts, pe, tenant, discovered)
  if (!endpoints.token) {
    throw new UsageError(`no token endpoint for "${email}"`, {
      hint: 'Pass --provider NAME, --issuer URL, or --token-url URL (with --authorize-url or --device-url).',
    })
  }
  const scopes = opts.scopes ?? provider?.scopes ?? []
  if (scopes.length === 0) {
    throw new UsageError(`no scopes for "${email}": this server has no preset`, {
      hint: 'Pass --scope "SCOPE1 SCOPE2 ...", the mail scopes your server documents.',
    })
  }
  const sasl: SaslMechanism = opts.sasl ?? provider?.sasl[0] ?? 'XOAUTH2'
  if (provider && opts.sasl && !provider.sasl.includes(opts.sasl)) {
    throw new UsageError(`${provider.displayName} does not accept ${opts.sasl}; use ${provider.sasl.join(' or ')}`)
  }
  const servers = mailServers(opts, provider)
  const graph = graphSettings(opts, provider)
  if (opts.send === 'graph' && !graph)
    throw new UsageError('--send graph needs --graph (the sign-in must ask for Microsoft Graph Mail.Send)')

  const candidates = clientCandidates(opts, provider)
  return candidates.map((c) => {
    const s: AccountSettings = {
      email,
      provider: provider?.name ?? 'custom',
      clientId: c.clientId,
      clientLabel: c.label,
      scopes,
      endpoints: endpoints as AccountEndpoints,
      servers,
      sasl,
      flow,
    }
    if (tenant !== undefined && Object.values(pe).some((u) => u?.includes('{tenant}'))) s.tenant = tenant
    if (c.clientSecret) s.clientSecret = c.clientSecret
    if (opts.clientAuth) s.clientAuth = opts.clientAuth
    if (opts.ca) s.ca = opts.ca
    if (opts.mailbox && opts.mailbox.toLowerCase() !== email.toLowerCase()) s.mailbox = opts.mailbox
    if (opts.signInAs && opts.signInAs.toLowerCase() !== email.toLowerCase()) s.signInAs = opts.signInAs
    if (provider?.authorizationParams) s.authorizationParams = provider.authorizationParams
    if (graph) {
      s.resources = { graph: { scopes: graph.scopes } }
      s.servers = { ...servers, graph: graph.url }
    }
    const send = opts.send ?? (graph ? 'graph' : undefined)
    if (send) s.send = send
    return s
  })
}

/** `--graph`: the Graph API base and scopes, or undefined without it; refused for providers without Graph. */
function graphSettings(
  opts: AccountOptions,
  provider: Provider | undefined,
): { url: string; scopes: string[] } | undefined {
  if (!opts.graph) {
    if (opts.graphUrl) throw new UsageError('--graph-url goes with --graph')
    return undefined
  }
  if (provider && !provider.graph)
    throw new UsageError(`--graph sends through Microsoft Graph; ${provider.displayName} has no Graph`, {
      hint: 'Leave out --graph: this provider takes mail over SMTP.',
    })
  const url = opts.graphUrl ?? provider?.graph?.url ?? GRAPH_DEFAULT.url
  return { url: checkGraphUrl(url), scopes: [...(provider?.graph?.scopes ?? GRAPH_DEFAULT.scopes)] }
}

/** The Graph API base: https (http only for a loopback test server), no credentials, no query; no trailing slash. */
export function checkGraphUrl(raw: string): string {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new UsageError(
      `the Graph URL "${raw.replace(/\/\/[^/?#]*@/, '//***@')}" is not a URL; write it like ${GRAPH_DEFAULT.url}`,
    )
  }
  const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(u.hostname)
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback))
    throw new UsageError(`the Graph URL "${u.origin}" must use https:// (http:// only for a loopback test server)`)
  if (u.username || u.password || u.search || u.hash)
    throw new UsageError('the Graph URL must not hold a user, a password, a query or a fragment')
  return u.href.replace(/\/+$/, '')
}

/** The account's endpoints: options first, then the provider's (tenant applied), then discovery. */
function accountEndpoints(
  opts: AccountOptions,
  pe: Provider['endpoints'],
  tenant: string | undefined,
  discovered: AccountEndpoints | undefined,
): Partial<AccountEndpoints> {
  const endpoints: Partial<AccountEndpoints> = {
    issuer: opts.issuer ?? discovered?.issuer ?? applyTenant(pe.issuer, tenant),
    authorization: opts.authorizeUrl ?? applyTenant(pe.authorization, tenant) ?? discovered?.authorization,
    token: opts.tokenUrl ?? applyTenant(pe.token, tenant) ?? discovered?.token,
    deviceAuthorization:
      opts.deviceUrl ?? applyTenant(pe.deviceAuthorization, tenant) ?? discovered?.deviceAuthorization,
    revocation: opts.revocationUrl ?? applyTenant(pe.revocation, tenant) ?? discovered?.revocation,
  }
  for (const k of Object.keys(endpoints) as (keyof AccountEndpoints)[])
    if (endpoints[k] === undefined) delete endpoints[k]
  return endpoints
}

/** IMAP, POP3 and SMTP server URLs: options first, then the provider's. */
function mailServers(opts: AccountOptions, provider: Provider | undefined): AccountSettings['servers'] {
  const servers: AccountSettings['servers'] = {}
  const imap = opts.imapUrl ?? provider?.servers.imap
  const pop = opts.popUrl ?? provider?.servers.pop
  const smtp = opts.smtpUrl ?? provider?.servers.smtp
  if (imap) servers.imap = normaliseServerUrl('imap', imap)
  if (pop) servers.pop = normaliseServerUrl('pop', pop)
  if (smtp) servers.smtp = normaliseServerUrl('smtp', smtp)
  return servers
}

/** The client ids to try, in order: the user's own, or the provider's built-in ones. */
function clientCandidates(opts: AccountOptions, provider: Provider | undefined): ClientCandidate[] {
  let candidates: ClientCandidate[]
  if (opts.clientId) {
    candidates = [
      {
        clientId: opts.clientId,
        ...(opts.clientSecret ? { clientSecret: opts.clientSecret } : {}),
        label: 'your client id',
      },
    ]
  } else {
    candidates = (provider?.clients ?? []).map((c) =>
      opts.clientSecret ? { ...c, clientSecret: opts.clientSecret } : c,
    )
  }
  if (candidates.length === 0) {
    throw new UsageError(`no client id for "${opts.email}"`, {
      hint: 'Pass --client-id ID (and --client-secret-file F, or - for stdin, if your app has a secret).',
    })
  }
  return candidates
}

/** Which interactive flow to use when the caller did not say. */
export function pickFlow(provider: Provider | undefined, settings: AccountSettings, canOpenBrowser: boolean): Flow {
  const allowed = provider?.flows ?? (['browser', 'device', 'paste'] as Flow[])
  const hasDevice = settings.endpoints.deviceAuthorization !== undefined && allowed.includes('device')
  const hasBrowser = settings.endpoints.authorization !== undefined && allowed.includes('browser')
  const hasPaste = settings.endpoints.authorization !== undefined && allowed.includes('paste')
  if (canOpenBrowser && hasBrowser) return 'browser'
  if (hasDevice) return 'device'
  // headless and no device flow (Google), or a redirect no listener can receive (Yahoo, AOL)
  if (hasBrowser || hasPaste) return 'paste'
  throw new ConfigError(
    ERR.PROVIDER_FLOW_UNSUPPORTED,
    `no sign-in flow is available for "${settings.email}" (no authorization or device endpoint)`,
    {
      account: settings.email,
    },
  )
}

export function assertFlowAllowed(provider: Provider | undefined, settings: AccountSettings, flow: Flow): void {
  const allowed = provider?.flows ?? (['browser', 'device', 'paste'] as Flow[])
  if (!allowed.includes(flow) || flowEndpoint(settings, flow) === undefined) {
    const why =
      provider?.flowRefusals?.[flow] ??
      `${provider?.displayName ?? 'this server'} offers no ${flow === 'device' ? 'device authorization endpoint' : 'authorization endpoint'}`
    // the first other flow that works here; with none, the one that would need only an endpoint
    const other = otherFlows(provider, settings, flow)[0] ?? (flow === 'device' ? 'paste' : 'device')
    throw new UsageError(`--${flow} cannot be used for "${settings.email}": ${why}`, {
      hint:
        other === 'paste' && flow === 'device'
          ? `Use "mailkey add ${shArg(settings.email)} --paste" on a machine without a browser.`
          : `Use "mailkey add ${shArg(settings.email)} --${other}".`,
    })
  }
}

function flowEndpoint(settings: AccountSettings, flow: Flow): string | undefined {
  return flow === 'device' ? settings.endpoints.deviceAuthorization : settings.endpoints.authorization
}

/** The other flows an account could sign in with, besides `flow` (for advice after a failure). */
export function otherFlows(provider: Provider | undefined, settings: AccountSettings, flow: Flow): Flow[] {
  const allowed = provider?.flows ?? (['browser', 'device', 'paste'] as Flow[])
  return (['device', 'paste', 'browser'] as Flow[]).filter(
    (f) => f !== flow && allowed.includes(f) && flowEndpoint(settings, f) !== undefined,
  )
}

/**
 * The candidates whose built-in client id is known to work with `flow` (a device-code-only id is
 * left out of a browser sign-in). A user's own id and config-file ids carry no such limit.
 */
export function candidatesFor(
  provider: Provider | undefined,
  candidates: AccountSettings[],
  flow: Flow,
): AccountSettings[] {
  const limits = new Map((provider?.clients ?? []).map((c) => [c.clientId, c.flows]))
  const usable = candidates.filter((s) => {
    const flows = s.clientLabel === 'your client id' ? undefined : limits.get(s.clientId)
    return flows === undefined || flows.includes(flow)
  })
  return usable.length > 0 ? usable : candidates
}
