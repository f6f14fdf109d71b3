/**
 * Built-in provider presets.
 *
 * Client ids are the public ids of open-source mail clients (Thunderbird's), which work for
 * personal and work accounts without any app registration. They are data: a user can pass
 * `--client-id` or define a provider in config.toml. Sources are in docs/providers.md.
 *
 * Owns: the preset table and domain -> provider guessing. Must not: do I/O.
 */
import type { Provider } from './types.js'

/** why a provider registered with https://127.0.0.1 cannot use the browser flow (one line for `add`) */
function fixedRedirectWhy(name: string): string {
  return `${name} accepts only the redirect https://127.0.0.1 (no port), which mailkey cannot listen on: the browser ends there and you paste the address back`
}

const MS_BASE = 'https://login.microsoftonline.com/{tenant}/oauth2/v2.0'

/**
 * Microsoft Graph's public API base and the scope `--graph` asks for (learn.microsoft.com/graph/api/
 * user-sendmail: delegated Mail.Send): Microsoft's preset, and any provider that names no other.
 */
export const GRAPH_DEFAULT = {
  url: 'https://graph.microsoft.com/v1.0',
  scopes: ['https://graph.microsoft.com/Mail.Send'],
} as const

export const microsoft: Provider = {
  name: 'microsoft',
  displayName: 'Microsoft (Outlook.com / Microsoft 365)',
  shortName: 'Microsoft',
  // learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code (checked 2026-11-22):
  // {tenant} is common | organizations | consumers | a tenant id or domain.
  endpoints: {
    authorization: `${MS_BASE}/authorize`,
    token: `${MS_BASE}/token`,
    deviceAuthorization: `${MS_BASE}/devicecode`,
  },
  defaultTenant: 'common',
  // Tried in this order while Microsoft answers that the id itself is dead (AADSTS7000112
  // disabled, AADSTS700016 not found): mailkey sees those at the device-code and token endpoints,
  // never in the browser. Order and sources: docs/adr/0014-redirects-and-fallback-client-ids.md.
  clients: [
    // Thunderbird desktop (mozilla releases-comm-central OAuth2Providers.sys.mjs): public client,
    // no secret, loopback redirect, device code allowed; the id tenants most often allow. The older
    // Thunderbird id 08162f7c-... is disabled (AADSTS7000112) and must not come back.
    { clientId: '9e5f94bc-e8a4-4e73-b8be-63364c29d753', label: 'Thunderbird' },
    // KDE KMail/Akonadi (KDE/kdepim-runtime resources/imap/outlookpasswordrequester.cpp): the same
    // redirect form (http://localhost:<random>, PKCE, tenant common). Device code unverified.
    { clientId: '18da2bc3-146a-4581-8c92-27dc7b9954a0', label: 'KDE KMail' },
    // Alpine (commit c5a870b: "can only be used for the device method"): device code only.
    { clientId: 'f21dcaf2-8020-469b-8135-343bfc35d046', label: 'Alpine', flows: ['device'] },
  ],
  // learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
  // One resource per token (AADSTS700022): never mix Graph scopes in. offline_access is what
  // makes Microsoft return a refresh token. openid + email are OpenID Connect scopes, not a
  // resource: they add an id_token naming who signed in (for the identity check before
  // "authenticated but not connected") and leave the access token's audience alone; products
  // request exactly this set against /common (chatwoot microsoft_concern.rb, msgvault oauth.go).
  scopes: [
    'https://outlook.office.com/IMAP.AccessAsUser.All',
    'https://outlook.office.com/POP.AccessAsUser.All',
    'https://outlook.office.com/SMTP.Send',
    'offline_access',
    'openid',
    'email',
  ],
  flows: ['browser', 'device', 'paste'],
  // Thunderbird's form since 2026-03 (OAuth2.sys.mjs: redirectionEndpoint defaults to
  // "http://localhost"); no public source shows http://127.0.0.1 registered for this id, and
  // Microsoft refuses an unregistered redirect in the browser (AADSTS50011).
  redirect: { host: 'localhost', path: '/' },
  // Exchange Online refuses OAUTHBEARER; XOAUTH2 only.
  sasl: ['XOAUTH2'],
  // One resource per token, one scope per service: a token without IMAP.AccessAsUser.All is
  // refused by IMAP although SMTP takes it.
  protocolScopes: { imap: 'IMAP.AccessAsUser.All', pop: 'POP.AccessAsUser.All', smtp: 'SMTP.Send' },
  savesSentMail: { server: 'Exchange Online', folder: 'Sent Items' },
  servers: {
    imap: 'imaps://outlook.office365.com:993',
    pop: 'pop3s://outlook.office365.com:995',
    smtp: 'smtp://smtp.office365.com:587',
  },
  domains: [
    'outlook.com',
    'hotmail.com',
    'live.com',
    'msn.com',
    'passport.com',
    'outlook.de',
    'outlook.fr',
    'outlook.es',
    'outlook.it',
    'outlook.jp',
    'hotmail.co.uk',
    'hotmail.fr',
    'hotmail.de',
    'hotmail.it',
    'hotmail.es',
    'live.co.uk',
    'live.fr',
    'live.de',
    'live.nl',
    'live.ca',
  ],
  mxSuffixes: ['.mail.protection.outlook.com', '.olc.protection.outlook.com'],
  // learn.microsoft.com/entra/identity-platform/refresh-tokens: 90 days, replaced on every use.
  refreshTokenIdleDays: 90,
  // learn.microsoft.com/graph/api/user-sendmail (checked 2026-12-06): POST /me/sendMail needs the
  // delegated Mail.Send permission; Thunderbird's id is registered for it (research/client-ids.md)
  graph: { url: GRAPH_DEFAULT.url, scopes: [...GRAPH_DEFAULT.scopes] },
  // SMTP until the server says SMTP AUTH is off (535 5.7.139), then Graph if the grant has it
  send: 'auto',
  notes: 'SMTP AUTH must be enabled for the mailbox by the tenant admin (else 535 5.7.139).',
}

export const google: Provider = {
  name: 'google',
  displayName: 'Google (Gmail / Workspace)',
  shortName: 'Google',
  endpoints: {
    issuer: 'https://accounts.google.com',
    authorization: 'https://accounts.google.com/o/oauth2/v2/auth',
    token: 'https://oauth2.googleapis.com/token',
    revocation: 'https://oauth2.googleapis.com/revoke',
  },
  clients: [
    // Thunderbird's installed-app client. Google requires the installed-app secret at the token
    // endpoint even with PKCE; it is "not treated as a secret" (developers.google.com native apps).
    {
      clientId: '406964657835-aq8lmia8j95dhl1a2bvharmfk3t1hgqj.apps.googleusercontent.com',
      clientSecret: 'kSmqreRr0qwBWJgbf5Y-PjSU',
      label: 'Thunderbird',
    },
  ],
  scopes: ['https://mail.google.com/'],
  // Google returns a refresh token only when the consent screen was shown.
  authorizationParams: { access_type: 'offline', prompt: 'consent' },
  // The device flow rejects https://mail.google.com/ (invalid_scope): loopback only.
  flows: ['browser', 'paste'],
  flowRefusals: { device: 'Google does not allow mail scopes in the device flow' },
  // what Thunderbird sends for this id (OAuth2.sys.mjs default); Google's desktop clients accept
  // any loopback port
  redirect: { host: 'localhost', path: '/' },
  sasl: ['XOAUTH2', 'OAUTHBEARER'],
  servers: {
    imap: 'imaps://imap.gmail.com:993',
    pop: 'pop3s://pop.gmail.com:995',
    smtp: 'smtps://smtp.gmail.com:465',
  },
  domains: ['gmail.com', 'googlemail.com'],
  mxSuffixes: ['.google.com', '.googlemail.com'],
  notes: 'Apps in "Testing" status get refresh tokens that die after 7 days.',
}

export const yahoo: Provider = {
  name: 'yahoo',
  displayName: 'Yahoo Mail',
  shortName: 'Yahoo',
  endpoints: {
    authorization: 'https://api.login.yahoo.com/oauth2/request_auth',
    token: 'https://api.login.yahoo.com/oauth2/get_token',
  },
  clients: [
    {
      clientId: 'dj0yJmk9WVZUaWRNUUZSQTBNJmQ9WVdrOVNqbHJUMGhtTkU4bWNHbzlNQT09JnM9Y29uc3VtZXJzZWNyZXQmc3Y9MCZ4PTgz',
      label: 'Thunderbird',
    },
  ],
  scopes: ['mail-w'],
  // Thunderbird registered this id with the redirect https://127.0.0.1 (OAuth2Providers.sys.mjs):
  // https and no port, which no loopback listener can receive. The browser ends on that address
  // and the user pastes it back.
  flows: ['paste'],
  flowRefusals: { browser: fixedRedirectWhy('Yahoo'), device: 'Yahoo offers no device code sign-in' },
  redirect: { host: '127.0.0.1', path: '/', fixed: 'https://127.0.0.1' },
  sasl: ['XOAUTH2', 'OAUTHBEARER'],
  servers: {
    imap: 'imaps://imap.mail.yahoo.com:993',
    pop: 'pop3s://pop.mail.yahoo.com:995',
    smtp: 'smtps://smtp.mail.yahoo.com:465',
  },
  domains: ['yahoo.com', 'ymail.com', 'rocketmail.com', 'yahoo.co.uk', 'yahoo.fr', 'yahoo.de', 'att.net'],
}

export const aol: Provider = {
  name: 'aol',
  displayName: 'AOL Mail',
  shortName: 'AOL',
  endpoints: {
    authorization: 'https://api.login.aol.com/oauth2/request_auth',
    token: 'https://api.login.aol.com/oauth2/get_token',
  },
  clients: [
    {
      clientId: 'dj0yJmk9MGNoTTQ0SjhIN1dSJmQ9WVdrOVdIVnFkVVp2UkZNbWNHbzlNQT09JnM9Y29uc3VtZXJzZWNyZXQmc3Y9MCZ4PTNm',
      label: 'Thunderbird',
    },
  ],
  scopes: ['mail-w'],
  // Thunderbird registered this id with the redirect https://127.0.0.1 (OAuth2Providers.sys.mjs):
  // https and no port, which no loopback listener can receive. The browser ends on that address
  // and the user pastes it back.
  flows: ['paste'],
  flowRefusals: { browser: fixedRedirectWhy('AOL'), device: 'AOL offers no device code sign-in' },
  redirect: { host: '127.0.0.1', path: '/', fixed: 'https://127.0.0.1' },
  sasl: ['XOAUTH2', 'OAUTHBEARER'],
  servers: {
    imap: 'imaps://imap.aol.com:993',
    pop: 'pop3s://pop.aol.com:995',
    smtp: 'smtps://smtp.aol.com:465',
  },
  domains: ['aol.com', 'aim.com'],
}

export const fastmail: Provider = {
  name: 'fastmail',
  displayName: 'Fastmail',
  shortName: 'Fastmail',
  endpoints: {
    issuer: 'https://api.fastmail.com',
    authorization: 'https://api.fastmail.com/oauth/authorize',
    // Fastmail uses one endpoint for the code exchange and for refresh.
    token: 'https://api.fastmail.com/oauth/refresh',
  },
  clients: [{ clientId: '35f141ae', label: 'Thunderbird' }],
  scopes: [
    'https://www.fastmail.com/dev/protocol-imap',
    'https://www.fastmail.com/dev/protocol-pop',
    'https://www.fastmail.com/dev/protocol-smtp',
  ],
  flows: ['browser', 'paste'],
  // Thunderbird names no redirect for this id, so it sends OAuth2.sys.mjs's default http://localhost
  redirect: { host: 'localhost', path: '/' },
  sasl: ['XOAUTH2', 'OAUTHBEARER'],
  servers: {
    imap: 'imaps://imap.fastmail.com:993',
    pop: 'pop3s://pop.fastmail.com:995',
    smtp: 'smtps://smtp.fastmail.com:465',
  },
  domains: ['fastmail.com', 'fastmail.fm', 'messagingengine.com'],
}

export const BUILTIN_PROVIDERS: ReadonlyMap<string, Provider> = new Map(
  [microsoft, google, yahoo, aol, fastmail].map((p) => [p.name, p]),
)

/**
 * The built-in preset an account names (AccountSettings.provider), for the rules derived from
 * provider data when the account is used (domain/provider-rules.ts). Undefined for a custom server
 * and for a config-file provider of its own name; a config-file provider that takes a preset's
 * name gets that preset's rules.
 */
export function presetNamed(name: string): Provider | undefined {
  return BUILTIN_PROVIDERS.get(name)
}

/** The provider an address belongs to, by its domain alone (no DNS). */
export function providerForDomain(
  email: string,
  providers: Iterable<Provider> = BUILTIN_PROVIDERS.values(),
): Provider | undefined {
  const domain = email.slice(email.lastIndexOf('@') + 1).toLowerCase()
  for (const p of providers) if (p.domains.includes(domain)) return p
  return undefined
}

/** The provider whose MX suffix matches one of the given MX hosts. */
export function providerForMx(
  mxHosts: string[],
  providers: Iterable<Provider> = BUILTIN_PROVIDERS.values(),
): Provider | undefined {
  for (const p of providers) {
    for (const host of mxHosts) {
      const h = host.toLowerCase().replace(/\.$/, '')
      if (p.mxSuffixes?.some((s) => h.endsWith(s))) return p
    }
  }
  return undefined
}
