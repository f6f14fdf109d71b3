/**
 * Read-side views of accounts (list, status) and removal.
 *
 * Owns: the AccountStatus shape (also the `--json` output of `mailkey status`). Must not: print.
 */
import { Secret } from '../core/secret.js'
import { stripControls } from '../core/server-text.js'
import { grantHas } from '../store/seal.js'
import { acquire } from '../store/lock.js'
import { accountId, type AccountRecord, type Identity, type LastError, type SendMode } from '../domain/account.js'
import { REVOKE_TIMEOUT_MS, WRITE_LOCK_TIMEOUT_MS } from '../config/settings.js'
import type { Broker } from './broker.js'
import { unknownAccount } from './failures.js'
import { aadstsCodesIn, describeAadsts } from '../oauth/aadsts.js'
import { OAUTH_ERROR_MEANINGS } from '../oauth/classify.js'
import { describeHorizon, grantHorizon, type GrantPolicy } from './horizon.js'

export interface AccountStatus {
  email: string
  /** the mailbox named in SASL when it is not `email` (a shared mailbox) */
  mailbox?: string
  provider: string
  tenant?: string
  clientId: string
  clientLabel?: string
  /** how the grant was obtained */
  flow: string
  scopes: string[]
  servers: { imap?: string; pop?: string; smtp?: string; graph?: string }
  sasl: string
  /** how the account submits mail in effect (issue 16): its own mode, else its provider's, else smtp */
  send?: SendMode
  /** Microsoft Graph in the grant (issue 16): its access token's state */
  graph?: { accessToken: { present: boolean; expiresAt?: string } }
  /** 'active': works; 'reauth': the server refused the grant, sign in again */
  state: 'active' | 'reauth'
  accessToken: { present: boolean; valid: boolean; expiresAt?: string; expiresInSec?: number }
  refreshToken: { present: boolean; receivedAt?: string; ageDays?: number; idleLimitDays?: number }
  /** when the grant stops working unless renewed or used (broker/horizon.ts); warn: time to say so */
  grantHorizon?: {
    at: string
    kind: 'idle' | 'max-age'
    days: number
    daysLeft: number
    warn: boolean
    message: string
  }
  grantedAt: string
  refreshedAt?: string
  grantedScope?: string
  identity?: Identity
  lastError?: LastError & { atIso: string; meaning?: string }
  /** where the grant is kept, and whether it is encrypted there */
  storage:
    | { kind: 'file'; path: string; encrypted: boolean; protection: 'file' | 'keyring' | 'passphrase' }
    /** a shared store (PostgreSQL, Redis): always sealed with the store key */
    | { kind: 'shared'; store: string; encrypted: true; protection: 'store-key' }
    /** seen through a token service (remote/): kept by the service's store */
    | { kind: 'service'; service: string; store?: string }
}

const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString())

export function meaningOf(l: LastError): string | undefined {
  for (const c of l.providerCodes ?? aadstsCodesIn(l.message)) {
    const d = describeAadsts(c.replace(/^AADSTS/, ''))
    if (d) return `AADSTS${d.code}: ${d.meaning}. ${d.advice}`
  }
  return l.oauthError ? OAUTH_ERROR_MEANINGS[l.oauthError] : undefined
}

export function toStatus(broker: Broker, rec: AccountRecord, policy: GrantPolicy, sharedLabel?: string): AccountStatus {
  const s = rec.settings
  const g = rec.grant
  const now = broker.now()
  const st: AccountStatus = {
    email: s.email,
    provider: s.provider,
    clientId: s.clientId,
    flow: s.flow,
    scopes: s.scopes,
    servers: s.servers,
    sasl: s.sasl,
    state: rec.state,
    accessToken: {
      present: grantHas(g, 'accessToken'),
      // a grant the server refused gives no token (broker.ts throws): its unexpired one is not valid
      valid: rec.state === 'active' && grantHas(g, 'accessToken') && g?.expiresAt !== undefined && g.expiresAt > now,
    },
    refreshToken: { present: grantHas(g, 'refreshToken') },
    grantedAt: iso(g?.grantedAt ?? rec.updatedAt) as string,
    storage: sharedLabel
      ? { kind: 'shared', store: sharedLabel, encrypted: true, protection: 'store-key' }
      : {
          kind: 'file',
          path: broker.file.recordPath(accountId(s.email)),
          encrypted: rec.sealed !== undefined,
          protection: rec.sealed
            ? (broker.file.keys?.meta()?.keys.find((k) => k.kid === rec.sealed?.kid)?.kind ?? 'passphrase')
            : 'file',
        },
  }
  if (s.mailbox) st.mailbox = s.mailbox
  if (s.send) st.send = s.send // statusOf puts the mode in effect here
  if (s.resources?.graph) {
    const gt = g?.resources?.graph
    const present = gt !== undefined && (gt.accessToken !== undefined || gt.sealed === true)
    st.graph = { accessToken: { present, ...(gt?.expiresAt !== undefined ? { expiresAt: iso(gt.expiresAt) } : {}) } }
  }
  if (s.tenant) st.tenant = s.tenant
  if (s.clientLabel) st.clientLabel = s.clientLabel
  if (g?.expiresAt !== undefined) {
    st.accessToken.expiresAt = iso(g.expiresAt)
    st.accessToken.expiresInSec = Math.round((g.expiresAt - now) / 1000)
  }
  if (g && grantHas(g, 'refreshToken')) {
    const at = g.refreshTokenAt ?? g.grantedAt
    st.refreshToken.receivedAt = iso(at)
    st.refreshToken.ageDays = Math.floor(((now - at) / 86_400_000) * 10) / 10
    if (policy.idleDays) st.refreshToken.idleLimitDays = policy.idleDays
  }
  const h = rec.state === 'active' ? grantHorizon(g, policy, now) : undefined
  if (h)
    st.grantHorizon = {
      at: iso(h.at) as string,
      kind: h.kind,
      days: h.days,
      daysLeft: h.daysLeft,
      warn: h.warn,
      message: describeHorizon(s.email, h),
    }
  if (g?.refreshedAt !== undefined) st.refreshedAt = iso(g.refreshedAt)
  if (g?.scope) st.grantedScope = g.scope
  if (g?.identity) st.identity = g.identity
  if (rec.lastError) {
    const meaning = meaningOf(rec.lastError)
    // Cleaned again on the way out: a record written before server text was cleaned on entry may
    // still hold escapes (issue 11, item 8).
    const clean = { ...rec.lastError, message: stripControls(rec.lastError.message) }
    if (clean.oauthError !== undefined) clean.oauthError = stripControls(clean.oauthError)
    if (clean.providerCodes) clean.providerCodes = clean.providerCodes.map(stripControls)
    st.lastError = { ...clean, atIso: iso(rec.lastError.at) as string, ...(meaning ? { meaning } : {}) }
  }
  return st
}

/** toStatus with the account's grant policy (broker.grantPolicy) */
export async function statusOf(broker: Broker, rec: AccountRecord): Promise<AccountStatus> {
  const st = toStatus(broker, rec, await broker.grantPolicy(rec.settings), (await broker.backend()).shared?.label)
  // how mail goes out in effect: its own setting, else config.toml's, else the preset's (issue 16)
  const { sendModeOf } = await import('./send-mode.js')
  st.send = await sendModeOf(broker, rec.settings.email)
  return st
}

export async function accountStatus(broker: Broker, account: string): Promise<AccountStatus> {
  const rec = await broker.store.read(accountId(account), { secrets: false })
  if (!rec) throw unknownAccount(account)
  return statusOf(broker, rec)
}

export async function listAccounts(
  broker: Broker,
): Promise<{ accounts: AccountStatus[]; broken: { file: string; message: string; code: string }[] }> {
  const { records, broken } = await broker.store.list()
  return {
    accounts: await Promise.all(records.map((r) => statusOf(broker, r))),
    broken: broken.map((b) => ({ file: b.file, message: b.error.message, code: b.error.code })),
  }
}

export interface RemoveResult {
  removed: boolean
  /** 'revoked' at the server, 'unsupported' (no revocation endpoint), or the failure message */
  revocation: 'revoked' | 'unsupported' | 'skipped' | { failed: string }
}

/** Forget an account; revoke its refresh token at the server first where that is possible (RFC 7009). */
export async function removeAccount(
  broker: Broker,
  account: string,
  opts: { revoke?: boolean } = {},
): Promise<RemoveResult> {
  const id = accountId(account)
  const rec = await broker.store.read(id)
  if (!rec) throw unknownAccount(account)
  let revocation: RemoveResult['revocation'] = 'skipped'
  if (opts.revoke !== false && rec.grant?.refreshToken) {
    if (!rec.settings.endpoints.revocation) {
      revocation = 'unsupported'
    } else {
      try {
        const { revokeToken } = await import('../oauth/grants.js')
        await revokeToken(rec.settings, new Secret(rec.grant.refreshToken), {
          account: id,
          timeoutMs: REVOKE_TIMEOUT_MS,
          ...(rec.grant.accessToken ? { secrets: [new Secret(rec.grant.accessToken)] } : {}),
        })
        revocation = 'revoked'
      } catch (e) {
        revocation = { failed: (e as Error).message }
      }
    }
  }
  const removed = await broker.flight.exclusive(id, WRITE_LOCK_TIMEOUT_MS, () => broker.store.remove(id))
  await broker.forgetCached(id)
  return { removed, revocation }
}
