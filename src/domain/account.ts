/**
 * The account domain: what mailkey keeps per account (the settings used at sign-in, to which a
 * grant is bound by its client id and token endpoint, and the grant itself), the record format
 * and its version, and the account-id rule. Every layer above speaks in these shapes; the file
 * store writes them as one JSON file per account.
 *
 * Owns: record shapes, RECORD_VERSION, the sealed-box shape inside a record, the account id.
 * Must not: do I/O, or import anything of mailkey but core/, errors.ts and provider data types.
 * This module is on the fast `mailkey token` path: no dependencies.
 */
import { UsageError } from '../errors.js'
import { addressProblem, quoted } from '../core/address.js'
import type { Flow, SaslMechanism } from '../providers/types.js'

export const RECORD_VERSION = 1

export interface AccountEndpoints {
  issuer?: string
  authorization?: string
  token: string
  deviceAuthorization?: string
  revocation?: string
}

export interface AccountSettings {
  /** the mailbox address; also the account's name */
  email: string
  /** the mailbox to open when it is not `email` (a shared mailbox): the SASL user (XOAUTH2 user=) */
  mailbox?: string
  /**
   * the user the provider signs in for this account when it is not `email` (an alias, a sign-in
   * name that differs from the address, the user of a shared mailbox named as the account): sent
   * as login_hint, and the one other name a sign-in's id_token may give (broker/sign-in.ts)
   */
  signInAs?: string
  /** provider preset name, a config-file provider name, or 'custom' */
  provider: string
  tenant?: string
  clientId: string
  /** optional confidential-client secret (kept in the 0600 state file, never in config.toml) */
  clientSecret?: string
  /** how the client authenticates at the token endpoint when it has a secret */
  clientAuth?: 'post' | 'basic'
  clientLabel?: string
  scopes: string[]
  endpoints: AccountEndpoints
  authorizationParams?: Record<string, string>
  /** `graph`: the Microsoft Graph API base (https://graph.microsoft.com/v1.0) for submission (issue 16) */
  servers: { imap?: string; pop?: string; smtp?: string; graph?: string }
  /** PEM file trusted for this account's mail servers */
  ca?: string
  sasl: SaslMechanism
  /** how the grant was obtained */
  flow: Flow | 'import' | 'env'
  /**
   * Other resources the user consented to at sign-in, each with the scopes asked for it (one resource
   * per access token on Microsoft's v2 endpoint: a token for these comes from a refresh with them)
   */
  resources?: Partial<Record<ResourceName, { scopes: string[] }>>
  /** how mail is submitted: SMTP, Microsoft Graph, or SMTP until it answers 5.7.139 (absent: the provider's setting) */
  send?: SendMode
}

/** Resources besides the mail servers a grant may cover. */
export type ResourceName = 'graph'
export const RESOURCE_NAMES: readonly ResourceName[] = ['graph']

/** `[providers.<name>] send`: how the proxy and `mailkey send` submit mail (issue 16). */
export type SendMode = 'smtp' | 'graph' | 'auto'
export const SEND_MODES: readonly SendMode[] = ['smtp', 'graph', 'auto']

/** An access token for one resource of a grant (the grant's refresh token serves them all). */
export interface ResourceToken {
  accessToken?: string
  tokenType?: string
  /** epoch ms; absent when the server sent no expires_in */
  expiresAt?: number
  scope?: string
  refreshedAt?: number
  /** the access token is in the record's `sealed` box (an encrypted store) */
  sealed?: true
}

export interface Identity {
  email?: string
  name?: string
  /** Microsoft tenant id */
  tid?: string
  sub?: string
  iss?: string
  /** every address-like name the id_token gave (email, preferred_username, upn), when more than one */
  names?: string[]
}

export interface GrantRecord {
  refreshToken?: string
  accessToken?: string
  tokenType?: string
  /** epoch ms; absent when the server sent no expires_in */
  expiresAt?: number
  /** scopes the server says it granted */
  scope?: string
  /** when the user signed in (or imported the grant) */
  grantedAt: number
  /** when the current refresh token was received (rotation resets it) */
  refreshTokenAt?: number
  refreshedAt?: number
  /** when an access token was last handed out */
  lastUsedAt?: number
  identity?: Identity
  /** fingerprint of the environment-supplied refresh token this grant was seeded from */
  seededFrom?: string
  /** which tokens are sealed in the record's `sealed` box (an encrypted store): they exist, unseen */
  sealed?: ('accessToken' | 'refreshToken')[]
  /** access tokens for the other resources of `settings.resources` (the mail token is the fields above) */
  resources?: Partial<Record<ResourceName, ResourceToken>>
}

export interface LastError {
  code: string
  message: string
  oauthError?: string
  providerCodes?: string[]
  transient: boolean
  /** a connection failed with no HTTP answer: the server may have acted on the request (rotated the refresh token) */
  answerMaybeLost?: boolean
  /** the server's Retry-After, seconds */
  retryAfterSec?: number
  /** the refresh was for this resource's token (absent: the mail servers') */
  resource?: ResourceName
  /** epoch ms */
  at: number
}

/** What a sealed record carries in place of its secrets (the format: store/seal.ts). */
export interface SealedBox {
  /** the data key's id (store.json names where that key is kept) */
  kid: string
  alg: 'A256GCM'
  iv: string
  ct: string
  tag: string
}

export interface AccountRecord {
  v: typeof RECORD_VERSION
  settings: AccountSettings
  grant?: GrantRecord
  /** 'reauth': the grant was refused and only a new sign-in helps (the record is kept) */
  state: 'active' | 'reauth'
  lastError?: LastError
  updatedAt: number
  /**
   * When the store is encrypted (store.json): the access token, refresh token and client secret,
   * sealed with the store's data key (store/seal.ts); those fields are then absent above.
   */
  sealed?: SealedBox
}

/** The account id of an address: trimmed and lower-cased. The one rule; every lookup uses it. */
export function accountId(email: string): string {
  return email.trim().toLowerCase()
}

/**
 * The account id of an address typed by the user, or a UsageError that names it safely (quoted,
 * controls escaped) and says why: only RFC 5322 addr-specs are taken (core/address.ts).
 */
export function assertEmail(email: string): string {
  const id = accountId(email)
  const why = addressProblem(id)
  if (why !== undefined) {
    throw new UsageError(`${quoted(email.trim())} is not an e-mail address: ${why}`, {
      hint: 'Give the mailbox address, for example "mailkey add you@outlook.com".',
    })
  }
  return id
}
