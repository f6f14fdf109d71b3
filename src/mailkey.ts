/**
 * The public library object. Everything the CLI does goes through here.
 *
 *   import { createMailkey } from 'mailkey'
 *   const mk = createMailkey()
 *   const { token } = await mk.getAccessToken('you@outlook.com')
 *   imap.authenticate({ user: 'you@outlook.com', accessToken: token.reveal() })
 *
 * Owns: wiring the broker to the sign-in and account modules, and the narrow view of records, config
 * and state that the CLI, the proxy and the probe need (the broker and the store stay inside).
 * Must not: print or exit.
 */
import { Broker, type AccessToken, type BrokerOptions, type GetTokenOptions } from './broker/broker.js'
import type { AccountStatus, RemoveResult } from './broker/accounts.js'
import type { ImportOptions, SignInOptions } from './broker/sign-in.js'
import type { Secret } from './core/secret.js'
import type { Paths } from './config/paths.js'
import type { Config } from './config/config.js'
import type { AccountRecord } from './domain/account.js'
import type { KeepAliveNote, PassOptions } from './broker/keep-alive.js'
import type { SaslMechanism } from './providers/types.js'
import type { SendMode } from './domain/account.js'
import type { ItemStore } from './store/items.js'
import { resolvePaths } from './config/paths.js'
import { ConfigFile } from './config/config-file.js'
import { openStore } from './store/open.js'
import { FileItems } from './store/items.js'
import { isServiceUrl } from './remote/service-url.js'
import type { RemoteSource } from './remote/remote-source.js'

export type MailkeyOptions = BrokerOptions

export interface Mailkey {
  /** A token with at least the refresh margin of life left; refreshes (once, machine-wide) if needed. */
  getAccessToken(account: string, options?: GetTokenOptions): Promise<AccessToken>
  /** The base64 SASL initial response (XOAUTH2 or OAUTHBEARER) for the account's token. */
  getSaslResponse(
    account: string,
    options?: GetTokenOptions & { mechanism?: SaslMechanism; host?: string; port?: number },
  ): Promise<{ mechanism: SaslMechanism; response: Secret; token: AccessToken }>
  /** Interactive sign-in: device code, browser or paste. */
  signIn(options: SignInOptions): Promise<AccountStatus>
  /** Store a refresh token obtained elsewhere, after checking it with one refresh. */
  importRefreshToken(options: ImportOptions): Promise<AccountStatus>
  status(account: string): Promise<AccountStatus>
  list(): Promise<{ accounts: AccountStatus[]; broken: { file: string; message: string; code: string }[] }>
  remove(account: string, options?: { revoke?: boolean }): Promise<RemoveResult>
  /**
   * Load now what a refresh and a SASL response load on first use. For long-running programs: Node
   * remembers a failed import() for the life of the process, so one that failed for lack of file
   * descriptors (EMFILE) would otherwise break every later refresh until a restart.
   */
  preload(): Promise<void>
  /** where this mailkey keeps its config file and its state */
  readonly paths: Paths
  /** the account's stored record without its secrets (undefined: no such account) */
  record(account: string): Promise<AccountRecord | undefined>
  /** config.toml, parsed (undefined when there is none); parsed again when the file changes */
  config(): Promise<Config | undefined>
  /** I2: refuse state directories that are symbolic links, not ours, or open to others (creates nothing) */
  assertPrivate(): Promise<void>
  /** create the state directories (0700) when missing, after the same check */
  ensureStateDir(): Promise<void>
  /** an encrypted store: unlock its keys now (agent, keyring, passphrase_command or the terminal) */
  unlock(): Promise<void>
  /** one keep-alive pass over idle-limited grants (broker/keep-alive.ts); long-running callers repeat it */
  keepAlive(o?: PassOptions): Promise<KeepAliveNote[]>
  /** the services' API keys and proxy passwords: in the shared store when there is one (store/items.ts) */
  items(): Promise<ItemStore>
  /** what the accounts are kept in: 'file', or the shared store's label (no password) */
  storeLabel(): Promise<string>
  /** how the account submits mail: SMTP, Microsoft Graph, or SMTP until 5.7.139 (broker/send-mode.ts) */
  sendMode(account: string): Promise<SendMode>
  /** remember how the account submits mail */
  rememberSendMode(account: string, mode: SendMode): Promise<void>
}

export function createMailkey(options: MailkeyOptions = {}): Mailkey {
  const env = options.env ?? process.env
  if (isServiceUrl(env.MAILKEY_STORE_URL)) return remoteMailkey({ ...options, env })
  const broker = new Broker(options)
  return {
    paths: broker.paths,
    record: (account) => broker.record(account),
    config: () => broker.config.load(),
    assertPrivate: () => broker.file.assertPrivate(),
    // the local state directory (proxy passwords, the host cache), whatever store holds the accounts
    ensureStateDir: () => broker.file.ensureDir(),
    async unlock() {
      await broker.file.keys?.unlockAll()
    },
    async keepAlive(o) {
      return (await import('./broker/keep-alive.js')).keepAlivePass(broker, o)
    },
    getAccessToken: (account, o) => broker.getAccessToken(account, o),
    async items() {
      return (await import('./broker/items.js')).itemsOf(broker)
    },
    async storeLabel() {
      return (await broker.backend()).shared?.label ?? 'file'
    },
    async preload() {
      await Promise.all([broker.preload(), import('./sasl/index.js')])
    },
    async getSaslResponse(account, o = {}) {
      return await saslResponseOf(await broker.getAccessToken(account, o), o)
    },
    async signIn(o) {
      const { signIn } = await import('./broker/sign-in.js')
      const { statusOf } = await import('./broker/accounts.js')
      return statusOf(broker, await signIn(broker, o))
    },
    async importRefreshToken(o) {
      const { importRefreshToken } = await import('./broker/sign-in.js')
      const { statusOf } = await import('./broker/accounts.js')
      return statusOf(broker, await importRefreshToken(broker, o))
    },
    async status(account) {
      return (await import('./broker/accounts.js')).accountStatus(broker, account)
    },
    async list() {
      return (await import('./broker/accounts.js')).listAccounts(broker)
    },
    async remove(account, o) {
      return (await import('./broker/accounts.js')).removeAccount(broker, account, o)
    },
    async sendMode(account) {
      return (await import('./broker/send-mode.js')).sendModeOf(broker, account)
    },
    async rememberSendMode(account, mode) {
      await (await import('./broker/send-mode.js')).rememberSendMode(broker, account, mode)
    },
  }
}

/**
 * The library object on a host that uses a token service (MAILKEY_STORE_URL=https://...,
 * remote/service-client.ts) instead of a store: tokens, SASL responses, status and list come from
 * the service; sign-in, import and removal are refused with the command to run where the store
 * is. What stays local is local: config.toml, the state directory (the proxy's passwords and
 * certificate); never a store key or a refresh token.
 */
function remoteMailkey(options: MailkeyOptions & { env: NonNullable<MailkeyOptions['env']> }): Mailkey {
  const env = options.env
  const paths = options.paths ?? resolvePaths(env)
  const config = new ConfigFile(paths.configFile)
  const local = openStore({ env, paths })
  let source: RemoteSource | undefined
  // made on first use (the HTTP modules load only then), so a missing key is an error of the call
  // that needs it, with its exit code
  const remote = async (): Promise<RemoteSource> => {
    if (!source) {
      const [{ ServiceClient, serviceTarget }, { RemoteSource }] = await Promise.all([
        import('./remote/service-client.js'),
        import('./remote/remote-source.js'),
      ])
      source = new RemoteSource(new ServiceClient(serviceTarget(env)))
    }
    return source
  }
  return {
    paths,
    getAccessToken: async (account, o) => {
      // the token service hands out mail tokens only (its API has no resource yet)
      if (o?.resource) return Promise.reject((await remote()).notHere('a Microsoft Graph token', account))
      return await (await remote()).getAccessToken(account, o)
    },
    async getSaslResponse(account, o = {}) {
      return await saslResponseOf(await (await remote()).getAccessToken(account, o), o)
    },
    signIn: async (o) => Promise.reject((await remote()).notHere('add (sign in)', o.email)),
    importRefreshToken: async (o) => Promise.reject((await remote()).notHere('import', o.email)),
    remove: async (account) => Promise.reject((await remote()).notHere('remove', account)),
    status: async (account) => await (await remote()).status(account),
    list: async () => await (await remote()).list(),
    record: async (account) => await (await remote()).record(account),
    config: () => config.load(),
    assertPrivate: () => local.assertPrivate(),
    ensureStateDir: () => local.ensureDir(),
    unlock: async () => undefined,
    preload: async () => {
      await import('./sasl/index.js')
    },
    // the service keeps its grants alive; a host without a store has none to keep
    keepAlive: async () => [],
    items: async () => new FileItems(paths),
    storeLabel: async () => (await remote()).label,
    // mail from a host on a token service goes over SMTP (Graph tokens do not travel through it yet)
    sendMode: async () => 'smtp',
    rememberSendMode: async () => undefined,
  }
}

/** The SASL initial response for a token (XOAUTH2 or OAUTHBEARER; host and port for the latter). */
async function saslResponseOf(
  token: AccessToken,
  o: { mechanism?: SaslMechanism; host?: string; port?: number },
): Promise<{ mechanism: SaslMechanism; response: Secret; token: AccessToken }> {
  const mechanism = o.mechanism ?? token.sasl
  const { encodeSasl } = await import('./sasl/index.js')
  const args = {
    user: token.user,
    token: token.token,
    ...(o.host ? { host: o.host } : {}),
    ...(o.port ? { port: o.port } : {}),
  }
  return { mechanism, response: encodeSasl(mechanism, args), token }
}
