/**
 * Provider presets are data: endpoints, scopes, built-in client ids, mail servers and quirks.
 * Every field can be overridden per account (flags at `add`, or the config file).
 *
 * Owns: the Provider shape. Must not: do I/O.
 */

export type SaslMechanism = 'XOAUTH2' | 'OAUTHBEARER'
export type Flow = 'device' | 'browser' | 'paste'

/** A client id mailkey may sign in with. Providers can list several: ids die without warning. */
export interface ClientCandidate {
  clientId: string
  /** "installed app" secrets (Google) are published on purpose and not confidential */
  clientSecret?: string
  /** who registered it, for messages */
  label: string
  /** the only flows this id is known to work with (e.g. a device-code-only id); default: all */
  flows?: Flow[]
}

/**
 * The redirect registered for the built-in clients.
 *
 * A loopback redirect (RFC 8252 §7.3) is `http://<host>:<port><path>`: mailkey listens on the
 * loopback address and the browser delivers the code by itself. `host` is the registered form:
 * "localhost" is resolved by the browser to 127.0.0.1 or ::1, so mailkey then listens on both.
 *
 * `fixed` is a registered redirect that no loopback listener can receive (Yahoo's and AOL's
 * `https://127.0.0.1`: https, no port): the browser ends on an error page at that address and
 * the user pastes the address back (the paste flow only).
 */
export interface Redirect {
  host: '127.0.0.1' | 'localhost' | '[::1]'
  path: string
  fixed?: string
}

export interface Endpoints {
  /** RFC 8414 issuer; also used for discovery when an endpoint is missing */
  issuer?: string
  authorization?: string
  token?: string
  deviceAuthorization?: string
  revocation?: string
}

export interface Provider {
  name: string
  displayName: string
  /** the name in running text ("Microsoft's mail servers accept only XOAUTH2") */
  shortName?: string
  endpoints: Endpoints
  /** endpoints contain "{tenant}" (Microsoft); the default tenant */
  defaultTenant?: string
  clients: ClientCandidate[]
  /** scopes requested at sign-in (space-joined on the wire, RFC 6749 §3.3) */
  scopes: string[]
  /** extra parameters on the authorization request */
  authorizationParams?: Record<string, string>
  /** flows this provider allows, in the order mailkey prefers them */
  flows: Flow[]
  /** why a flow left out of `flows` cannot be used, when the provider has a reason (for the message) */
  flowRefusals?: Partial<Record<Flow, string>>
  /** the redirect registered for the built-in clients (see Redirect) */
  redirect: Redirect
  /** SASL mechanisms the provider's mail servers accept, preferred first (domain/provider-rules.ts) */
  sasl: SaslMechanism[]
  /**
   * per mail service, the scope (as it appears in a granted scope string) a token needs to open
   * it, when the provider has one per service: `mailkey test` and the proxy name the one missing
   */
  protocolScopes?: { imap?: string; pop?: string; smtp?: string }
  /**
   * the mail server files every sent message itself (Exchange Online: in Sent Items): client
   * recipes tell the client not to save a second copy
   */
  savesSentMail?: { server: string; folder: string }
  servers: { imap?: string; pop?: string; smtp?: string }
  /**
   * Microsoft Graph submission (issue 16): the API base and the scopes a grant needs to send
   * through it, when the provider has it (Microsoft)
   */
  graph?: { url: string; scopes: string[] }
  /** how mail is submitted by default (`[providers.<name>] send`); absent: SMTP */
  send?: 'smtp' | 'graph' | 'auto'
  /** e-mail domains that are known to belong to this provider */
  domains: string[]
  /** MX host suffixes that identify this provider for custom domains */
  mxSuffixes?: string[]
  /** days an unused refresh token lives (for expiry warnings and the proxy's keep-alive) */
  refreshTokenIdleDays?: number
  /** days a grant lives however it is used (e.g. Google apps in "testing": 7) */
  grantMaxAgeDays?: number
  /** a short note shown by `status` and the docs */
  notes?: string
}
