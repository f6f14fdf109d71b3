/**
 * The user-edited config file ($XDG_CONFIG_HOME/mailkey/config.toml). It never holds tokens.
 *
 *   refresh_margin_sec = 300          # refresh when the access token has less left than this
 *   http_timeout_sec = 30             # give up on an OAuth server that does not answer (then: try later)
 *
 *   [providers.example]               # a provider of your own (any RFC 6749 server)
 *   issuer = "https://login.example.com"          # discovery (RFC 8414 / OIDC), or:
 *   authorize_url = "..."  token_url = "..."  device_url = "..."  revocation_url = "..."
 *   client_id = "..."  (or client_ids = ["a", "b"])  client_secret = "..."
 *   scopes = ["..."]   flows = ["device", "browser", "paste"]   sasl = ["XOAUTH2"]
 *   imap_url = "imaps://imap.example.com"  pop_url = "..."  smtp_url = "smtp://smtp.example.com:587"
 *   domains = ["example.com"]   redirect_host = "127.0.0.1"   redirect_path = "/"
 *   redirect_uri = "https://127.0.0.1"   # a registered redirect no listener can receive: paste only
 *   auth_params = { prompt = "consent" }   tenant = "..."
 *   send = "smtp" | "graph" | "auto"    graph_url = "https://graph.microsoft.com/v1.0"
 *
 *   [providers.microsoft]             # a built-in provider's table may set only send and graph_url
 *   send = "graph"                    # submit through Microsoft Graph (issue 16); default "auto"
 *
 * Errors carry file:line:col (pizauth's error_at_span idea).
 *
 * Owns: parsing and validating config.toml. Must not: do network I/O.
 */
import { readFile } from 'node:fs/promises'
import { parse, TomlError } from 'smol-toml'
import { ConfigError, ERR } from '../errors.js'
import type { ClientCandidate, Flow, Provider, SaslMechanism } from '../providers/types.js'
import { GRAPH_DEFAULT, presetNamed } from '../providers/registry.js'
import { endpointProblem } from '../core/net.js'
import { isAddress } from '../core/address.js'
import type { HooksConfig } from '../core/hooks.js'
import { accountId } from '../domain/account.js'

export interface ProxyListenerConfig {
  protocol: 'imap' | 'pop3' | 'smtp'
  port: number
  host: string
  tls: 'none' | 'starttls' | 'implicit'
  /** accounts allowed on this listener (default: any account with a local password) */
  accounts?: string[]
  /** send these clients to this server instead of the account's own (imaps://host:993 ...) */
  upstream?: string
  /** PEM file of a private CA that the `upstream` server's certificate comes from */
  ca?: string
  /** offer XOAUTH2/OAUTHBEARER and pass a client's own token through (default false: docs/adr/0008) */
  oauthPassthrough?: boolean
}

export interface ProxyConfig {
  /** PEM files for TLS towards clients (listeners with tls = starttls | implicit); without them, mailkey's self-signed certificate */
  tlsCert?: string
  tlsKey?: string
  /** longest wait before checking a password again after repeated failures (0: no waiting); default 15 */
  failedLoginDelayMaxSec?: number
  /** how long a client's login may take upstream (token, connect, TLS, AUTHENTICATE); default 30 */
  loginTimeoutSec?: number
  /** client connections at once (default 1000, lowered to what the fd limit allows) */
  maxConnections?: number
  /** client connections at once from one address (default 100) */
  maxConnectionsPerSource?: number
  /** a client that sends no command within this many seconds is closed (default 20) */
  firstCommandTimeoutSec?: number
  /** password guesses (proxy/throttle.ts; defaults in DEFAULT_THROTTLE / DEFAULT_KDF_GATE) */
  guessesPerMinPerAddress?: number
  guessBurstPerAddress?: number
  guessesPerMin?: number
  guessBurst?: number
  passwordChecksParallel?: number
  passwordChecksQueued?: number
  listeners: ProxyListenerConfig[]
}

export interface Config {
  file: string
  refreshMarginSec?: number
  /** how long to wait for the OAuth server (default 30 s) */
  httpTimeoutSec?: number
  providers: Map<string, Provider>
  proxy?: ProxyConfig
  /** [hooks]: shell commands run on events that need the user (core/hooks.ts) */
  hooks?: HooksConfig
  /** [store]: how an encrypted token store is opened (store/protection.ts) */
  store?: StoreConfig
}

export interface StoreConfig {
  /** a shell command that prints the store's passphrase (like a mail client's PassCmd) */
  passphraseCommand?: string
  /** how long "mailkey unlock" keeps the key, in seconds (default 8 h) */
  unlockSec?: number
  /** a shared store for many hosts: postgres://… or redis://… (store/shared/); MAILKEY_STORE_URL wins */
  url?: string
  /** the shared store's key file (32 random bytes, base64 or hex); MAILKEY_STORE_KEY_FILE wins */
  keyFile?: string
}

const TOP_KEYS = new Set(['refresh_margin_sec', 'http_timeout_sec', 'providers', 'proxy', 'hooks', 'store'])
const STORE_KEYS = new Set(['passphrase_command', 'unlock_sec', 'url', 'key_file'])
const HOOK_KEYS = new Set(['reauth', 'device_code', 'refresh_error', 'timeout_sec'])
/** [proxy] keys for connection caps (proxy/admission.ts) and the first-command timeout */
const ADMISSION_KEYS = ['max_connections', 'max_connections_per_source', 'first_command_timeout_sec'] as const

/** [proxy] guess throttle and KDF queue: key -> field, smallest and largest value, whole numbers only */
const THROTTLE_KEYS = {
  guesses_per_min_per_address: ['guessesPerMinPerAddress', 0.01, 10_000, false],
  guess_burst_per_address: ['guessBurstPerAddress', 1, 10_000, true],
  guesses_per_min: ['guessesPerMin', 0.01, 100_000, false],
  guess_burst: ['guessBurst', 1, 100_000, true],
  password_checks_parallel: ['passwordChecksParallel', 1, 64, true],
  password_checks_queued: ['passwordChecksQueued', 0, 10_000, true],
} as const

const PROXY_KEYS = new Set([
  'tls_cert',
  'tls_key',
  'failed_login_delay_max_sec',
  'login_timeout_sec',
  'listeners',
  ...ADMISSION_KEYS,
  ...Object.keys(THROTTLE_KEYS),
])
const LISTENER_KEYS = new Set(['protocol', 'port', 'host', 'tls', 'accounts', 'upstream', 'ca', 'oauth_passthrough'])
const PROVIDER_KEYS = new Set([
  'display_name',
  'issuer',
  'authorize_url',
  'token_url',
  'device_url',
  'revocation_url',
  'client_id',
  'client_ids',
  'client_secret',
  'scopes',
  'flows',
  'sasl',
  'imap_url',
  'pop_url',
  'smtp_url',
  'domains',
  'redirect_host',
  'redirect_path',
  'redirect_uri',
  'auth_params',
  'tenant',
  'refresh_token_idle_days',
  'grant_max_age_days',
  'send',
  'graph_url',
])
/**
 * Keys a [providers.NAME] table may set for a built-in provider without being a provider of its
 * own (no issuer): `[providers.microsoft] send = "graph"` (issue 16).
 */
const PRESET_OVERRIDE_KEYS = new Set(['send', 'graph_url'])
const SEND_VALUES = ['smtp', 'graph', 'auto'] as const
const FLOWS: readonly Flow[] = ['device', 'browser', 'paste']
const MECHS: readonly SaslMechanism[] = ['XOAUTH2', 'OAUTHBEARER']

export async function loadConfig(file: string): Promise<Config> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { file, providers: new Map() }
    throw new ConfigError(
      ERR.CONFIG_INVALID,
      `cannot read the config file "${file}" (${(e as NodeJS.ErrnoException).code ?? e})`,
      {
        file,
        cause: e,
      },
    )
  }
  return parseConfig(text, file)
}

/** `fail(path, key, message)`: a ConfigError at the key's (or the table's) place in the file. */
type Fail = (path: string[], key: string | undefined, msg: string) => never

function parseToml(text: string, file: string): Record<string, unknown> {
  try {
    return parse(text) as Record<string, unknown>
  } catch (e) {
    if (e instanceof TomlError) {
      const msg = e.message.split('\n')[0] ?? 'syntax error'
      throw new ConfigError(
        ERR.CONFIG_INVALID,
        `${file}:${e.line}:${e.column}: ${msg.replace(/^Invalid TOML document: /, '')}`,
        {
          file,
          line: e.line,
          column: e.column,
          hint: `Fix the config file "${file}".`,
        },
      )
    }
    throw e
  }
}

function failAt(text: string, file: string): Fail {
  return (path, key, msg) => {
    const loc = locate(text, path, key)
    throw new ConfigError(ERR.CONFIG_INVALID, `${file}:${loc.line}:${loc.column}: ${msg}`, {
      file,
      line: loc.line,
      column: loc.column,
      hint: `Fix the config file "${file}".`,
    })
  }
}

export function parseConfig(text: string, file: string): Config {
  const data = parseToml(text, file)
  const fail = failAt(text, file)
  for (const k of Object.keys(data)) if (!TOP_KEYS.has(k)) fail([], k, `unknown setting "${k}"`)
  const cfg: Config = { file, providers: new Map() }
  if (data.http_timeout_sec !== undefined) {
    const v = data.http_timeout_sec
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 1 || v > 300)
      fail([], 'http_timeout_sec', 'http_timeout_sec must be a number of seconds from 1 to 300')
    cfg.httpTimeoutSec = v as number
  }
  if (data.refresh_margin_sec !== undefined) {
    const v = data.refresh_margin_sec
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 86_400)
      fail([], 'refresh_margin_sec', 'refresh_margin_sec must be a whole number of seconds from 0 to 86400')
    cfg.refreshMarginSec = v as number
  }
  if (data.providers !== undefined) cfg.providers = parseProviders(data.providers, fail)
  if (data.proxy !== undefined) cfg.proxy = parseProxy(data.proxy, text, file)
  if (data.hooks !== undefined) cfg.hooks = parseHooks(data.hooks, fail)
  if (data.store !== undefined) cfg.store = parseStore(data.store, fail)
  return cfg
}

function parseProviders(providers: unknown, fail: Fail): Map<string, Provider> {
  if (typeof providers !== 'object' || providers === null || Array.isArray(providers))
    fail([], 'providers', '"providers" must be a table of [providers.NAME] sections')
  const out = new Map<string, Provider>()
  for (const [name, raw] of Object.entries(providers as Record<string, unknown>)) {
    const path = ['providers', name]
    if (!/^[a-z0-9][a-z0-9._-]*$/i.test(name))
      fail(path, undefined, `provider name "${name}" may only use letters, digits, ".", "_" and "-"`)
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      fail(path, undefined, `[providers.${name}] must be a table`)
    out.set(
      name,
      parseProvider(name, raw as Record<string, unknown>, (key, msg) => fail(path, key, msg)),
    )
  }
  return out
}

/** Typed reads of one table's keys; a wrong type fails at the key. */
function fieldReader(p: Record<string, unknown>, fail: (key: string | undefined, msg: string) => never) {
  const str = (k: string): string | undefined => {
    const v = p[k]
    if (v === undefined) return undefined
    if (typeof v !== 'string' || v.length === 0) fail(k, `"${k}" must be a non-empty string`)
    return v as string
  }
  const strList = (k: string): string[] | undefined => {
    const v = p[k]
    if (v === undefined) return undefined
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x.length === 0))
      fail(k, `"${k}" must be a list of strings`)
    return v as string[]
  }
  const positive = (k: string): number | undefined => {
    const v = p[k]
    if (v !== undefined && (typeof v !== 'number' || v <= 0)) fail(k, `"${k}" must be a positive number`)
    return v as number | undefined
  }
  return { str, strList, positive }
}

function parseProvider(
  name: string,
  p: Record<string, unknown>,
  fail: (key: string | undefined, msg: string) => never,
): Provider {
  for (const k of Object.keys(p)) if (!PROVIDER_KEYS.has(k)) fail(k, `unknown setting "${k}" in [providers.${name}]`)
  const { str, strList, positive } = fieldReader(p, fail)
  for (const k of ['issuer', 'authorize_url', 'token_url', 'device_url', 'revocation_url']) {
    const v = str(k)
    const problem = v === undefined ? undefined : endpointProblem(v)
    if (problem) fail(k, `"${k}" ${problem}`)
  }
  const clients = configClients(name, str, strList)
  const fixed = str('redirect_uri')
  if (fixed !== undefined && !URL.canParse(fixed)) fail('redirect_uri', '"redirect_uri" must be an absolute URL')
  // a redirect no listener can receive leaves the paste flow only, unless the file says otherwise
  const flows = strList('flows') ?? (fixed ? ['paste'] : ['browser', 'device', 'paste'])
  for (const f of flows) if (!FLOWS.includes(f as Flow)) fail('flows', `unknown flow "${f}" (use ${FLOWS.join(', ')})`)
  const sasl = (strList('sasl') ?? ['XOAUTH2']).map((s) => s.toUpperCase())
  for (const s of sasl)
    if (!MECHS.includes(s as SaslMechanism)) fail('sasl', `unknown SASL mechanism "${s}" (use XOAUTH2 or OAUTHBEARER)`)
  const issuer = str('issuer')
  const token = str('token_url')
  const preset = presetNamed(name)
  const { send, graphUrl } = submissionSettings(str, fail, name, preset)
  if (!issuer && !token && preset && Object.keys(p).every((k) => PRESET_OVERRIDE_KEYS.has(k)))
    return presetWith(preset, send, graphUrl)
  if (!issuer && !token) fail(undefined, `[providers.${name}] needs "issuer" (for discovery) or "token_url"`)
  const authParams = p.auth_params
  if (
    authParams !== undefined &&
    (typeof authParams !== 'object' ||
      authParams === null ||
      Array.isArray(authParams) ||
      Object.values(authParams).some((v) => typeof v !== 'string'))
  ) {
    fail('auth_params', '"auth_params" must be a table of strings')
  }
  const redirectHost = str('redirect_host') ?? '127.0.0.1'
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(redirectHost))
    fail('redirect_host', '"redirect_host" must be 127.0.0.1, localhost or [::1] (RFC 8252 §7.3)')
  const idle = positive('refresh_token_idle_days')
  const maxAge = positive('grant_max_age_days')
  return {
    name,
    displayName: str('display_name') ?? name,
    endpoints: {
      ...(issuer ? { issuer } : {}),
      ...(str('authorize_url') ? { authorization: str('authorize_url') } : {}),
      ...(token ? { token } : {}),
      ...(str('device_url') ? { deviceAuthorization: str('device_url') } : {}),
      ...(str('revocation_url') ? { revocation: str('revocation_url') } : {}),
    },
    clients,
    scopes: strList('scopes') ?? [],
    flows: flows as Flow[],
    redirect: {
      host: redirectHost as Provider['redirect']['host'],
      path: str('redirect_path') ?? '/',
      ...(fixed ? { fixed } : {}),
    },
    sasl: sasl as SaslMechanism[],
    servers: {
      ...(str('imap_url') ? { imap: str('imap_url') } : {}),
      ...(str('pop_url') ? { pop: str('pop_url') } : {}),
      ...(str('smtp_url') ? { smtp: str('smtp_url') } : {}),
    },
    domains: (strList('domains') ?? []).map((d) => d.toLowerCase()),
    ...(authParams ? { authorizationParams: authParams as Record<string, string> } : {}),
    ...(str('tenant') ? { defaultTenant: str('tenant') } : {}),
    ...(idle !== undefined ? { refreshTokenIdleDays: idle } : {}),
    ...(maxAge !== undefined ? { grantMaxAgeDays: maxAge } : {}),
    ...(send ? { send } : {}),
    ...(graphUrl ? { graph: { url: graphUrl, scopes: [...GRAPH_DEFAULT.scopes] } } : {}),
  }
}

/** The provider's client ids (client_ids, or client_id) with its secret. */
function configClients(
  name: string,
  str: (k: string) => string | undefined,
  strList: (k: string) => string[] | undefined,
): ClientCandidate[] {
  const ids = strList('client_ids') ?? (str('client_id') ? [str('client_id') as string] : [])
  const secret = str('client_secret')
  return ids.map((id) => ({
    clientId: id,
    ...(secret ? { clientSecret: secret } : {}),
    label: `config provider "${name}"`,
  }))
}

/** `send` and `graph_url` (issue 16), checked. */
function submissionSettings(
  str: (k: string) => string | undefined,
  fail: (key: string | undefined, msg: string) => never,
  name: string,
  preset: Provider | undefined,
): { send: Provider['send']; graphUrl: string | undefined } {
  const send = str('send')
  if (send !== undefined && !(SEND_VALUES as readonly string[]).includes(send))
    fail('send', `"send" must be ${SEND_VALUES.join(', ')}`)
  const graphUrl = str('graph_url')
  const problem = graphUrl === undefined ? undefined : endpointProblem(graphUrl)
  if (problem) fail('graph_url', `"graph_url" ${problem}`)
  // Graph needs a provider with Graph (Microsoft's preset) or a graph_url; else only "smtp" makes sense
  if (send && send !== 'smtp' && !graphUrl && !preset?.graph)
    fail(
      'send',
      `"send = ${send}" needs Microsoft Graph: [providers.${name}] has none (set graph_url, or send = "smtp")`,
    )
  return { send: send as Provider['send'], graphUrl }
}

/** A built-in provider with the settings a config table may change in it. */
function presetWith(preset: Provider, send: Provider['send'], graphUrl: string | undefined): Provider {
  const out: Provider = { ...preset }
  if (send) out.send = send
  if (graphUrl) out.graph = { url: graphUrl, scopes: preset.graph?.scopes ?? [...GRAPH_DEFAULT.scopes] }
  return out
}

function parseHooks(h: unknown, fail: Fail): HooksConfig {
  if (typeof h !== 'object' || h === null || Array.isArray(h)) fail([], 'hooks', '"hooks" must be a table')
  const hooks: HooksConfig = {}
  for (const [k, v] of Object.entries(h as Record<string, unknown>)) {
    if (!HOOK_KEYS.has(k))
      fail(['hooks'], k, `unknown hook "${k}" (use reauth, device_code, refresh_error, timeout_sec)`)
    if (k === 'timeout_sec') {
      if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 600)
        fail(['hooks'], k, '"timeout_sec" must be a number of seconds from 1 to 600')
      hooks.timeoutSec = v as number
    } else {
      if (typeof v !== 'string' || v.trim() === '') fail(['hooks'], k, `"${k}" must be a shell command`)
      hooks[k as 'reauth' | 'device_code' | 'refresh_error'] = v as string
    }
  }
  return hooks
}

function parseStore(t: unknown, fail: Fail): StoreConfig {
  if (typeof t !== 'object' || t === null || Array.isArray(t)) fail([], 'store', '"store" must be a table')
  const store: StoreConfig = {}
  for (const [k, v] of Object.entries(t as Record<string, unknown>)) {
    if (!STORE_KEYS.has(k))
      fail(['store'], k, `unknown setting "${k}" (use url, key_file, passphrase_command, unlock_sec)`)
    if (k === 'url' || k === 'key_file') {
      if (typeof v !== 'string' || v.trim() === '') fail(['store'], k, `"${k}" must be a non-empty string`)
      if (k === 'url') store.url = (v as string).trim()
      else store.keyFile = v as string
    } else if (k === 'unlock_sec') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 31 * 86400)
        fail(['store'], k, '"unlock_sec" must be a whole number of seconds from 1 to 2678400 (31 days)')
      store.unlockSec = v as number
    } else {
      if (typeof v !== 'string' || v.trim() === '') fail(['store'], k, '"passphrase_command" must be a shell command')
      store.passphraseCommand = v as string
    }
  }
  return store
}

function parseAdmission(p: Record<string, unknown>, out: ProxyConfig, fail: (key: string, msg: string) => never): void {
  const whole = (key: (typeof ADMISSION_KEYS)[number], max: number): number | undefined => {
    const v = p[key]
    if (v === undefined) return undefined
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > max)
      fail(key, `"${key}" must be a whole number from 1 to ${max}`)
    return v as number
  }
  const total = whole('max_connections', 1_000_000)
  const perSource = whole('max_connections_per_source', 1_000_000)
  const first = whole('first_command_timeout_sec', 300)
  if (total !== undefined) out.maxConnections = total
  if (perSource !== undefined) out.maxConnectionsPerSource = perSource
  if (first !== undefined) out.firstCommandTimeoutSec = first
}

/** Where [proxy] keys are, for error messages: fail at a line; the [proxy] line; a key of the n-th listener (-1: of [proxy]). */
interface ProxyPlaces {
  fail: (line: number, msg: string) => never
  proxyLine: () => number
  listenerLine: (n: number, key?: string) => number
}

function proxyPlaces(text: string, file: string): ProxyPlaces {
  const lines = text.split(/\r?\n/)
  const fail = (line: number, msg: string): never => {
    throw new ConfigError(ERR.CONFIG_INVALID, `${file}:${line}:1: ${msg}`, {
      file,
      line,
      column: 1,
      hint: `Fix the config file "${file}".`,
    })
  }
  const proxyLine = (): number => lines.findIndex((l) => /^\s*\[proxy\]/.test(l)) + 1 || 1
  /** the line of `key` inside the n-th [[proxy.listeners]] table */
  const listenerLine = (n: number, key?: string): number => {
    let seen = -1
    for (let i = 0; i < lines.length; i++) {
      if (/^\s*\[\[\s*proxy\.listeners\s*\]\]/.test(lines[i] ?? '')) seen++
      else if (seen === n && key && new RegExp(`^\\s*${key}\\s*=`).test(lines[i] ?? '')) return i + 1
      if (seen === n && !key) return i + 1
      if (seen > n) break
    }
    return proxyLine()
  }
  return { fail, proxyLine, listenerLine }
}

/**
 *   [proxy]
 *   tls_cert = "/path/cert.pem"   tls_key = "/path/key.pem"
 *   [[proxy.listeners]]
 *   protocol = "imap"   port = 1143   host = "127.0.0.1"   tls = "none" | "starttls" | "implicit"
 *   accounts = ["you@example.com"]   upstream = "imaps://imap.example.com:993"
 */
function parseProxy(raw: unknown, text: string, file: string): ProxyConfig {
  const at = proxyPlaces(text, file)
  const { fail, proxyLine } = at
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(proxyLine(), '"proxy" must be a table')
  const p = raw as Record<string, unknown>
  for (const k of Object.keys(p)) if (!PROXY_KEYS.has(k)) fail(proxyLine(), `unknown setting "${k}" in [proxy]`)
  const out: ProxyConfig = { listeners: [] }
  for (const k of ['tls_cert', 'tls_key'] as const) {
    const v = p[k]
    if (v !== undefined && (typeof v !== 'string' || v === '')) fail(proxyLine(), `"${k}" must be a file path`)
  }
  if (typeof p.tls_cert === 'string') out.tlsCert = p.tls_cert
  if (typeof p.tls_key === 'string') out.tlsKey = p.tls_key
  if ((out.tlsCert === undefined) !== (out.tlsKey === undefined))
    fail(proxyLine(), '"tls_cert" and "tls_key" go together')
  parseProxyLimits(p, out, at)
  const ls = p.listeners ?? []
  if (!Array.isArray(ls)) fail(proxyLine(), 'write listeners as [[proxy.listeners]] tables')
  ;(ls as unknown[]).forEach((item, n) => out.listeners.push(parseListener(item, n, at)))
  return out
}

/** [proxy] timeouts, caps and the guess throttle. */
function parseProxyLimits(p: Record<string, unknown>, out: ProxyConfig, at: ProxyPlaces): void {
  const { fail, listenerLine } = at
  const delay = p.failed_login_delay_max_sec
  if (delay !== undefined) {
    if (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0 || delay > 300) {
      fail(
        listenerLine(-1, 'failed_login_delay_max_sec'),
        '"failed_login_delay_max_sec" must be a number of seconds from 0 (no delay) to 300',
      )
    }
    out.failedLoginDelayMaxSec = delay as number
  }
  const lt = p.login_timeout_sec
  if (lt !== undefined) {
    if (typeof lt !== 'number' || !Number.isFinite(lt) || lt < 1 || lt > 300)
      fail(listenerLine(-1, 'login_timeout_sec'), '"login_timeout_sec" must be a number of seconds from 1 to 300')
    out.loginTimeoutSec = lt as number
  }
  parseAdmission(p, out, (key, msg) => fail(listenerLine(-1, key), msg))
  for (const [key, [field, min, max, whole]] of Object.entries(THROTTLE_KEYS)) {
    const v = p[key]
    if (v === undefined) continue
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (whole && !Number.isInteger(v))) {
      fail(listenerLine(-1, key), `"${key}" must be a ${whole ? 'whole ' : ''}number from ${min} to ${max}`)
    }
    out[field] = v as number
  }
}

/** The n-th [[proxy.listeners]] table. */
function parseListener(item: unknown, n: number, at: ProxyPlaces): ProxyListenerConfig {
  const { fail, listenerLine } = at
  if (typeof item !== 'object' || item === null) fail(listenerLine(n), 'a listener must be a table')
  const l = item as Record<string, unknown>
  for (const k of Object.keys(l))
    if (!LISTENER_KEYS.has(k)) fail(listenerLine(n, k), `unknown setting "${k}" in [[proxy.listeners]]`)
  if (l.protocol !== 'imap' && l.protocol !== 'pop3' && l.protocol !== 'smtp')
    fail(listenerLine(n, 'protocol'), '"protocol" must be "imap", "pop3" or "smtp"')
  if (typeof l.port !== 'number' || !Number.isInteger(l.port) || l.port < 0 || l.port > 65535)
    fail(listenerLine(n, 'port'), '"port" must be a port number')
  const host = l.host === undefined ? '127.0.0.1' : l.host
  if (typeof host !== 'string' || host === '') fail(listenerLine(n, 'host'), '"host" must be an address')
  const tls = l.tls === undefined ? 'none' : l.tls
  if (tls !== 'none' && tls !== 'starttls' && tls !== 'implicit')
    fail(listenerLine(n, 'tls'), '"tls" must be "none", "starttls" or "implicit"')
  const accounts = l.accounts
  if (
    accounts !== undefined &&
    (!Array.isArray(accounts) || accounts.some((a) => typeof a !== 'string' || !isAddress(a.trim())))
  )
    fail(listenerLine(n, 'accounts'), '"accounts" must be a list of e-mail addresses (RFC 5322 addr-specs)')
  const upstream = l.upstream
  if (upstream !== undefined && (typeof upstream !== 'string' || !/^(imaps?|pop3s?|smtps?):\/\/[^/]+$/.test(upstream)))
    fail(listenerLine(n, 'upstream'), '"upstream" must look like imaps://host:993')
  const ca = l.ca
  if (ca !== undefined && (typeof ca !== 'string' || ca === '')) fail(listenerLine(n, 'ca'), '"ca" must be a file path')
  const passthrough = l.oauth_passthrough
  if (passthrough !== undefined && typeof passthrough !== 'boolean')
    fail(listenerLine(n, 'oauth_passthrough'), '"oauth_passthrough" must be true or false')
  if (ca !== undefined && upstream === undefined)
    fail(
      listenerLine(n, 'ca'),
      '"ca" is for the server named by "upstream"; give both (an account\'s own CA is set with "mailkey add --ca")',
    )
  return {
    protocol: l.protocol as ProxyListenerConfig['protocol'],
    port: l.port as number,
    host: host as string,
    tls: tls as ProxyListenerConfig['tls'],
    ...(accounts ? { accounts: (accounts as string[]).map(accountId) } : {}),
    ...(typeof upstream === 'string' ? { upstream } : {}),
    ...(typeof ca === 'string' ? { ca } : {}),
    ...(passthrough === true ? { oauthPassthrough: true } : {}),
  }
}

/** Best-effort position of a key (or a table header) for error messages; 1-based. */
export function locate(text: string, path: string[], key?: string): { line: number; column: number } {
  const lines = text.split(/\r?\n/)
  const quote = (p: string): string => (/^[A-Za-z0-9_-]+$/.test(p) ? p : JSON.stringify(p))
  // a table header without spaces and without a trailing comment: "[providers.x] # mine"
  const headerOf = (l: string): string => l.replace(/#[^"']*$/, '').replace(/\s+/g, '')
  let start = 0
  if (path.length > 0) {
    const header = path.map(quote).join('.')
    const idx = lines.findIndex((l) => headerOf(l) === headerOf(`[${header}]`))
    if (idx >= 0) {
      if (key === undefined) return { line: idx + 1, column: 1 }
      start = idx + 1
    }
  }
  if (key !== undefined) {
    const re = new RegExp(`^\\s*("?)${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\1\\s*=`)
    for (let i = start; i < lines.length; i++) {
      const l = lines[i] ?? ''
      if (i > start && path.length > 0 && /^\s*\[/.test(l)) break
      if (re.test(l)) return { line: i + 1, column: l.search(/\S/) + 1 }
    }
    // the key may be a table of its own: [bogus] or [providers.x.bogus]
    const sub = headerOf([...path, key].map(quote).join('.'))
    const idx = lines.findIndex(
      (l) => headerOf(l) === `[${sub}]` || headerOf(l).startsWith(`[${sub}.`) || headerOf(l) === `[[${sub}]]`,
    )
    if (idx >= 0) return { line: idx + 1, column: lines[idx]!.search(/\S/) + 1 }
  }
  return { line: start > 0 ? start : 1, column: 1 }
}
