/**
 * Interactive sign-in (device code, browser, paste) and refresh-token import: picks the provider,
 * the flow and the client id (trying the next built-in id when one is rejected), then stores the
 * grant under the account lock.
 *
 * Owns: sign-in orchestration. Must not: print or read the terminal (callbacks do that).
 */
import { shArg } from '../core/address.js'
import { resolveMx } from 'node:dns/promises'
import {
  ConfigError,
  ERR,
  IdentityMismatchError,
  InterruptedError,
  MailkeyError,
  SignInTimeoutError,
  UsageError,
} from '../errors.js'
import { Secret } from '../core/secret.js'
import { acquire } from '../store/lock.js'
import { accountId, assertEmail, type AccountRecord, type AccountSettings, type Identity } from '../domain/account.js'
import { WRITE_LOCK_TIMEOUT_MS } from '../config/settings.js'
import { BUILTIN_PROVIDERS, providerForMx } from '../providers/registry.js'
import {
  assertFlowAllowed,
  candidateSettings,
  candidatesFor,
  chooseProvider,
  otherFlows,
  pickFlow,
  type AccountOptions,
} from '../providers/resolve.js'
import type { Flow, Provider } from '../providers/types.js'
import { discoverEndpoints } from '../oauth/discovery.js'
import { authorizationCodeSignIn } from '../oauth/auth-code.js'
import {
  pollDeviceAuthorization,
  refreshGrant,
  startDeviceAuthorization,
  type DeviceAuthorization,
  type TokenSet,
} from '../oauth/grants.js'
import { isClientRejection } from '../oauth/classify.js'
import { usesPlainHttp } from '../oauth/http.js'
import type { Broker } from './broker.js'
import { nextGrant } from './grant.js'

/**
 * What the user needs to see for a device sign-in: everything but the (secret) device code.
 * `purpose: 'graph'`: the second code of a `--graph` sign-in, the consent to send through
 * Microsoft Graph (a device code covers one resource).
 */
export type DevicePrompt = Omit<DeviceAuthorization, 'deviceCode'> & { account: string; purpose?: 'graph' }

export interface SignInCallbacks {
  /** device flow: show the code and the URL (RFC 8628 §3.3) */
  onDevicePrompt?: (p: DevicePrompt) => void
  /** device flow: seconds left, before each poll */
  onDeviceTick?: (secondsLeft: number) => void
  /** browser/paste flow: the URL to open; return true if a browser was launched */
  openBrowser?: (url: string) => Promise<boolean>
  /** browser/paste flow: the URL, after trying to open it */
  onAuthorizationUrl?: (url: string, info: { browserOpened: boolean; redirectUri: string; paste: boolean }) => void
  /** paste flow: resolves with the text the user pasted */
  readPastedRedirect?: (signal: AbortSignal) => Promise<string>
  /** `--graph`: whether the grant gave a Microsoft Graph token (Mail.Send), after the sign-in was stored */
  onGraph?: (r: { ok: true } | { ok: false; error: MailkeyError }) => void
  /** a built-in client id was refused; mailkey goes on with the next one */
  onClientRejected?: (info: { clientId: string; label: string; error: MailkeyError; next?: string }) => void
  /** which provider and flow were chosen; `why`: one line when the provider's registration decided the flow */
  onPlan?: (info: {
    provider: string
    flow: Flow | 'import'
    clientId: string
    plainHttp: boolean
    why?: string
  }) => void
}

export interface SignInOptions extends AccountOptions, SignInCallbacks {
  /** default: browser when one can be opened, device code when headless (never for Google) */
  flow?: Flow
  /** whether a browser can be opened here (auto flow choice) */
  canOpenBrowser?: boolean
  /** why no browser can be shown here at all (no display): an explicit browser flow is refused at once */
  browserUnavailable?: string
  /** browser/paste: how long to wait for the redirect (default 5 min) */
  timeoutMs?: number
  /** fixed port for the loopback redirect (default random) */
  redirectPort?: number
  signal?: AbortSignal
}

export interface ImportOptions extends AccountOptions, Pick<SignInCallbacks, 'onClientRejected' | 'onPlan'> {
  refreshToken: Secret
  signal?: AbortSignal
}

const RESERVED_TLDS = ['test', 'example', 'invalid', 'localhost', 'local', 'internal']

/** MX lookup for custom domains (RFC 2606/6761 reserved names are never looked up). */
async function mxProvider(email: string, providers: Iterable<Provider>): Promise<Provider | undefined> {
  const domain = email.slice(email.lastIndexOf('@') + 1)
  const tld = domain.slice(domain.lastIndexOf('.') + 1).toLowerCase()
  if (!domain.includes('.') || RESERVED_TLDS.includes(tld)) return undefined
  try {
    const mx = await Promise.race([
      resolveMx(domain),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 3000).unref()),
    ])
    return providerForMx(
      mx.map((m) => m.exchange),
      providers,
    )
  } catch {
    return undefined
  }
}

/** Fill options the caller left out from a previous record of the same account (re-sign-in). */
function withPrevious(opts: AccountOptions, prev: AccountRecord | undefined): AccountOptions {
  if (!prev) return opts
  const s = prev.settings
  const o: AccountOptions = { ...opts }
  const explicitServer = opts.provider !== undefined || opts.issuer !== undefined || opts.tokenUrl !== undefined
  if (!explicitServer) {
    if (s.provider === 'custom') {
      if (s.endpoints.issuer) o.issuer = s.endpoints.issuer
      o.tokenUrl = s.endpoints.token
      if (s.endpoints.authorization) o.authorizeUrl = s.endpoints.authorization
      if (s.endpoints.deviceAuthorization) o.deviceUrl = s.endpoints.deviceAuthorization
      if (s.endpoints.revocation) o.revocationUrl = s.endpoints.revocation
    } else {
      o.provider = s.provider
    }
    if (o.tenant === undefined && s.tenant) o.tenant = s.tenant
    if (o.scopes === undefined && s.provider === 'custom') o.scopes = s.scopes
    // A client id the user chose is kept; a built-in one is chosen afresh (it may have died).
    if (o.clientId === undefined && s.clientLabel === 'your client id') {
      o.clientId = s.clientId
      if (o.clientSecret === undefined && s.clientSecret) o.clientSecret = s.clientSecret
    }
  }
  if (o.imapUrl === undefined && s.servers.imap) o.imapUrl = s.servers.imap
  if (o.popUrl === undefined && s.servers.pop) o.popUrl = s.servers.pop
  if (o.smtpUrl === undefined && s.servers.smtp) o.smtpUrl = s.servers.smtp
  if (o.ca === undefined && s.ca) o.ca = s.ca
  if (o.sasl === undefined) o.sasl = s.sasl
  if (o.mailbox === undefined && s.mailbox) o.mailbox = s.mailbox
  if (o.signInAs === undefined && s.signInAs) o.signInAs = s.signInAs
  // a grant that had Graph keeps it on a new sign-in (the user asked for it once)
  if (o.graph === undefined && s.resources?.graph) o.graph = true
  if (o.graph && o.graphUrl === undefined && s.servers.graph) o.graphUrl = s.servers.graph
  if (o.send === undefined && s.send && (s.send !== 'graph' || o.graph)) o.send = s.send
  return o
}

async function plan(
  broker: Broker,
  rawOpts: AccountOptions,
  flow: AccountSettings['flow'],
): Promise<{ provider: Provider | undefined; candidates: AccountSettings[] }> {
  const email = assertEmail(rawOpts.email)
  const prev = await broker.store.read(email).catch(() => undefined)
  const opts = withPrevious({ ...rawOpts, email }, prev)
  const providers = (await broker.config.load())?.providers ?? new Map<string, Provider>()
  let provider = chooseProvider(opts, providers)
  if (!provider && !opts.issuer && !opts.tokenUrl) {
    provider = await mxProvider(email, [...providers.values(), ...BUILTIN_PROVIDERS.values()])
    if (!provider) {
      const domain = email.slice(email.indexOf('@') + 1)
      throw new UsageError(`cannot tell which provider serves "${domain}"`, {
        account: email,
        hint: `Say it: "mailkey add ${shArg(email)} --provider microsoft" (or google, yahoo, aol, fastmail), or give your server with --issuer URL.`,
      })
    }
  }
  let discovered
  const issuer = opts.issuer ?? (provider && !provider.endpoints.token ? provider.endpoints.issuer : undefined)
  if (issuer && !(opts.tokenUrl && (opts.authorizeUrl || opts.deviceUrl))) {
    discovered = await discoverEndpoints(issuer, { account: email })
  }
  return { provider, candidates: candidateSettings(opts, provider, flow, discovered) }
}

function deviceToPrompt(account: string, d: DeviceAuthorization): DevicePrompt {
  const { deviceCode: _secret, ...shown } = d
  return { ...shown, account }
}

/** Try each candidate client id in turn while the server says the id itself is the problem. */
async function withCandidates(
  candidates: AccountSettings[],
  cb: Pick<SignInCallbacks, 'onClientRejected'>,
  run: (s: AccountSettings) => Promise<TokenSet>,
): Promise<{ settings: AccountSettings; tokens: TokenSet }> {
  let lastErr: MailkeyError | undefined
  for (let i = 0; i < candidates.length; i++) {
    const s = candidates[i] as AccountSettings
    try {
      return { settings: s, tokens: await run(s) }
    } catch (e) {
      if (e instanceof MailkeyError && isClientRejection(e) && i + 1 < candidates.length) {
        const next = candidates[i + 1] as AccountSettings
        cb.onClientRejected?.({
          clientId: s.clientId,
          label: s.clientLabel ?? s.clientId,
          error: e,
          next: next.clientId,
        })
        lastErr = e
        continue
      }
      if (e instanceof MailkeyError && isClientRejection(e) && candidates.length > 1) {
        cb.onClientRejected?.({ clientId: s.clientId, label: s.clientLabel ?? s.clientId, error: e })
        e.hint = `All ${candidates.length} built-in client ids were refused. Pass your own with --client-id (see docs/providers.md).`
      }
      throw e
    }
  }
  throw lastErr ?? new ConfigError(ERR.CONFIG_INVALID, 'no client id to sign in with')
}

/**
 * Login CSRF (RFC 6749 §10.12, OIDC Core §15.5.2): whoever completes a sign-in decides whose
 * grant comes back. A grant whose id_token names someone other than the account (or the name
 * given with --sign-in-as) is refused, never stored with a warning. An id_token with no name at
 * all (only `sub`) names nobody, and a server without id_tokens gives nothing to compare.
 */
export function assertSignedInAs(settings: AccountSettings, identity: Identity | undefined): void {
  const names = identity?.names ?? (identity?.email ? [identity.email] : [])
  if (names.length === 0) return
  const allowed = [settings.email, settings.signInAs].filter((n): n is string => Boolean(n)).map((n) => n.toLowerCase())
  if (names.some((n) => allowed.includes(n.toLowerCase()))) return
  const who = identity?.email ?? (names[0] as string)
  throw new IdentityMismatchError(
    `the server signed in ${who}, not ${settings.signInAs ? `${settings.signInAs} (--sign-in-as) for ` : ''}${settings.email}; nothing was stored for "${settings.email}"`,
    who,
    { account: settings.email },
  )
}

async function saveGrant(
  broker: Broker,
  settings: AccountSettings,
  tokens: TokenSet,
  o: { rtOverride?: Secret; graph?: TokenSet } = {},
): Promise<AccountRecord> {
  assertSignedInAs(settings, tokens.identity)
  const now = broker.now()
  // an imported refresh token continues as the grant's when the server does not rotate it
  const rt = o.rtOverride
  const prev = rt ? { grantedAt: now, refreshToken: rt.reveal(), refreshTokenAt: now } : undefined
  let grant = nextGrant(prev, tokens, now)
  // the second device round's refresh token is the newer one; it serves both resources
  if (o.graph) grant = nextGrant(grant, o.graph, now, 'graph')
  const rec: AccountRecord = { v: 1, settings, state: 'active', grant, updatedAt: now }
  // Under the lock: a `mailkey token` running now must not interleave with this write.
  await broker.flight.exclusive(accountId(settings.email), WRITE_LOCK_TIMEOUT_MS, () => broker.store.write(rec))
  return rec
}

export async function signIn(broker: Broker, opts: SignInOptions): Promise<AccountRecord> {
  const planned = await plan(broker, opts, opts.flow ?? 'browser')
  const { provider } = planned
  const first = planned.candidates[0] as AccountSettings
  const flow: Flow = opts.flow ?? pickFlow(provider, first, opts.canOpenBrowser ?? false)
  assertFlowAllowed(provider, first, flow)
  if (flow === 'browser' && opts.browserUnavailable) throw noBrowserError(provider, first, opts.browserUnavailable)
  const candidates = candidatesFor(provider, planned.candidates, flow)
  for (const c of candidates) c.flow = flow
  // a provider whose registered redirect no listener can receive (Yahoo, AOL): say why it is paste
  const fixed = !opts.flow && flow === 'paste' ? provider?.redirect.fixed : undefined
  const why = fixed
    ? (provider?.flowRefusals?.browser ??
      `${provider?.displayName} is registered with the redirect ${fixed}, which mailkey cannot listen on: the browser ends there and you paste the address back`)
    : undefined
  opts.onPlan?.({
    provider: provider?.name ?? 'custom',
    flow,
    clientId: (candidates[0] as AccountSettings).clientId,
    plainHttp: usesPlainHttp(first),
    ...(why ? { why } : {}),
  })
  const { settings, tokens } = await withCandidates(candidates, opts, async (s) => {
    if (flow === 'device') return deviceSignIn(broker, s, opts)
    return authorizationCodeSignIn(s, {
      account: s.email,
      ...(s.resources?.graph ? { consentScopes: s.resources.graph.scopes } : {}),
      redirect: provider?.redirect ?? { host: '127.0.0.1', path: '/' },
      ...(opts.redirectPort !== undefined ? { port: opts.redirectPort } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      onAuthorizationUrl: async (url, redirectUri) => {
        const opened = flow === 'browser' && opts.openBrowser ? await opts.openBrowser(url).catch(() => false) : false
        opts.onAuthorizationUrl?.(url, { browserOpened: opened, redirectUri, paste: flow === 'paste' || !opened })
      },
      ...(flow === 'paste' || !opts.openBrowser
        ? opts.readPastedRedirect
          ? { readPastedRedirect: opts.readPastedRedirect }
          : {}
        : {}),
    }).catch((e: unknown) => {
      throw timedOut(e, provider, s, flow)
    })
  })
  if (flow !== 'device' || !settings.resources?.graph) {
    const rec = await saveGrant(broker, settings, tokens)
    if (settings.resources?.graph) await confirmGraph(broker, settings, opts)
    return rec
  }
  return await withGraphRound(broker, settings, tokens, opts)
}

/**
 * `--graph --device`: a second code for Graph (a device code has one resource). Whoever approves it
 * must be who approved the first (its id_token, asked for with the OpenID scopes, names the
 * account and the same subject), or nothing is stored: its refresh token would become the grant's.
 * Declined, expired or refused otherwise, the mail sign-in is kept and the Graph part reported.
 */
async function withGraphRound(
  broker: Broker,
  settings: AccountSettings,
  tokens: TokenSet,
  opts: SignInOptions,
): Promise<AccountRecord> {
  assertSignedInAs(settings, tokens.identity)
  const scopes = graphScopes(settings, settings.resources?.graph?.scopes ?? [])
  let graph: TokenSet | undefined
  let failure: MailkeyError | undefined
  try {
    graph = await deviceSignIn(broker, settings, opts, { scope: scopes, purpose: 'graph' })
    assertSameUser(settings, tokens.identity, graph.identity)
  } catch (e) {
    if (!(e instanceof MailkeyError) || e instanceof IdentityMismatchError || e instanceof InterruptedError) throw e
    failure = e
  }
  if (!graph) {
    // no Graph after all: the account sends as it would without --graph (unless --send said so)
    const { send: _s, ...rest } = settings
    const kept = opts.send && opts.send !== 'graph' ? { ...rest, send: opts.send } : rest
    const rec = await saveGrant(broker, kept, tokens)
    opts.onGraph?.({ ok: false, error: failure as MailkeyError })
    return rec
  }
  const rec = await saveGrant(broker, settings, tokens, { graph })
  opts.onGraph?.({ ok: true })
  return rec
}

/** A Graph round's scopes: Graph's, offline_access and the OpenID scopes (an id_token naming who approved). */
function graphScopes(s: AccountSettings, scopes: string[]): string[] {
  const extra = s.scopes.filter((x) => ['offline_access', 'openid', 'email', 'profile'].includes(x))
  return [...scopes, ...extra.filter((x) => !scopes.includes(x))]
}

/** The second round's approver is the first's: an allowed name, and the same subject when both say one. */
function assertSameUser(settings: AccountSettings, first: Identity | undefined, second: Identity | undefined): void {
  assertSignedInAs(settings, second)
  if (first?.sub && second?.sub && (first.sub !== second.sub || (first.tid ?? '') !== (second.tid ?? '')))
    throw new IdentityMismatchError(
      `the second code (Microsoft Graph) was approved by another user than the first; nothing was stored for "${settings.email}"`,
      second.email ?? second.sub,
      { account: settings.email },
    )
}

/**
 * `--graph`, once the grant is stored: a Graph token through the one refresh path (after a
 * browser sign-in it proves the consent; after the device rounds it is already there). A failure
 * leaves the mail sign-in in place and is reported, not thrown.
 */
async function confirmGraph(broker: Broker, settings: AccountSettings, cb: SignInCallbacks): Promise<void> {
  try {
    await broker.getAccessToken(settings.email, { resource: 'graph' })
    cb.onGraph?.({ ok: true })
  } catch (e) {
    if (!(e instanceof MailkeyError)) throw e
    cb.onGraph?.({ ok: false, error: e })
  }
}

/** The device flow for one candidate: ask for a code, show it (and fire the hook), poll. */
async function deviceSignIn(
  broker: Broker,
  s: AccountSettings,
  opts: SignInOptions,
  round: { scope?: string[]; purpose?: 'graph' } = {},
): Promise<TokenSet> {
  const email = s.email
  const d = await startDeviceAuthorization(s, {
    account: email,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(round.scope ? { scope: round.scope } : {}),
  })
  opts.onDevicePrompt?.({ ...deviceToPrompt(email, d), ...(round.purpose ? { purpose: round.purpose } : {}) })
  // RFC 8628 §3.3: the user enters the code elsewhere; a hook can push it to a phone
  await broker.fireHook('device_code', {
    account: email,
    user_code: d.userCode,
    verification_uri: d.verificationUri,
    verification_uri_complete: d.verificationUriComplete,
    expires_in: d.expiresIn,
    message: `Open ${d.verificationUri} and enter ${d.userCode} to sign in ${email} (valid ${Math.round(d.expiresIn / 60)} min)`,
  })
  return pollDeviceAuthorization(s, d, {
    account: email,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onDeviceTick ? { onTick: opts.onDeviceTick } : {}),
  })
}

/** An explicit browser sign-in where no browser can be shown: refused at once, naming the other ways. */
function noBrowserError(provider: Provider | undefined, s: AccountSettings, why: string): UsageError {
  const others = otherFlows(provider, s, 'browser')
  const a = shArg(s.email)
  const ways = others.map((f) =>
    f === 'device'
      ? `"mailkey add ${a} --device" (enter a code on any phone or computer)`
      : `"mailkey add ${a} --paste" (open the address on any machine, paste back where it ends)`,
  )
  return new UsageError(`--browser cannot show a browser here: ${why}`, {
    account: s.email,
    ...(ways.length > 0 ? { hint: `Sign in with ${ways.join(' or ')}.` } : {}),
  })
}

/**
 * A loopback sign-in that timed out: the provider may have refused the redirect in the browser,
 * where mailkey cannot see it (Microsoft's AADSTS50011), or compares redirect_uri byte for byte
 * (no RFC 8252 §7.3 any-port rule). The error learns the other flows; the CLI names the commands.
 */
function timedOut(e: unknown, provider: Provider | undefined, s: AccountSettings, flow: Flow): unknown {
  if (!(e instanceof SignInTimeoutError)) return e
  e.flow = flow
  e.otherFlows = otherFlows(provider, s, flow)
  if (e.redirectUri && flow === 'browser') {
    const who = provider?.shortName ?? 'The server'
    e.hint = `${who} may not have accepted the redirect ${e.redirectUri} (a refused redirect is shown in the browser, never to mailkey), or it wants the exact port it has registered.`
  }
  return e
}

/** Validate a refresh token with one refresh and store the (possibly rotated) result. */
export async function importRefreshToken(broker: Broker, opts: ImportOptions): Promise<AccountRecord> {
  const { candidates } = await plan(broker, opts, 'import')
  const first = candidates[0] as AccountSettings
  opts.onPlan?.({ provider: first.provider, flow: 'import', clientId: first.clientId, plainHttp: usesPlainHttp(first) })
  const { settings, tokens } = await withCandidates(candidates, opts, (s) =>
    refreshGrant(s, opts.refreshToken, { account: s.email, ...(opts.signal ? { signal: opts.signal } : {}) }),
  )
  return saveGrant(broker, settings, tokens, { rtOverride: opts.refreshToken })
}
