/**
 * The refresh itself, run by whoever holds the account's single flight (this process or its
 * detached worker): re-read the record (someone may have refreshed while we waited), refresh if
 * still needed, persist (B2), return the new record; on failure record it (B4) and throw.
 *
 * Owns: one refresh under the lock. Must not: lock, spawn, or fire hooks (the caller does).
 */
import { ERR, ReauthRequiredError, type MailkeyError } from '../errors.js'
import { Secret } from '../core/secret.js'
import type { AccountRecord, AccountSettings, ResourceName } from '../domain/account.js'
import type { TokenStore } from '../store/token-store.js'
import { LOST_ANSWER_WINDOW_MS, type Settings } from '../config/settings.js'
import { goodEnough, type Want } from './freshness.js'
import { nextGrant } from './grant.js'
import { presetNamed } from '../providers/registry.js'
import { noRefreshTokenHint } from '../domain/provider-rules.js'
import { withRetry, type Sleep } from './retry.js'
import { asMailkeyError, lastErrorOf, lostAnswer, noAnswer, unknownAccount } from './failures.js'

/** What a refresh needs from its surroundings (the broker, or the worker that has no broker). */
export interface RefreshContext {
  store: TokenStore
  settings: Settings
  now: () => number
  sleep: Sleep
  random: () => number
  fetch?: typeof fetch
}

export interface RefreshRequest extends Want {
  signal?: AbortSignal
  /**
   * A shared store saw an unfinished refresh by this holder (its intent, broker/fenced-flight.ts):
   * the provider may have rotated the refresh token and the answer been lost. An invalid_grant now
   * says so, and needs a sign-in; it is never retried.
   */
  cutOffRefreshBy?: string
}

/** What a flight passes on to the refresh: the request without the waiting parts (signal, deadline). */
export function refreshRequestOf(req: RefreshRequest): RefreshRequest {
  return {
    force: req.force,
    since: req.since,
    minSec: req.minSec,
    ...(req.resource ? { resource: req.resource } : {}),
    ...(req.cutOffRefreshBy ? { cutOffRefreshBy: req.cutOffRefreshBy } : {}),
  }
}

/** The caller holds the account's lock. */
export async function refreshUnderLock(ctx: RefreshContext, id: string, want: RefreshRequest): Promise<AccountRecord> {
  const rec = await ctx.store.read(id)
  if (!rec) throw unknownAccount(id)
  if (goodEnough(rec, want, ctx.now())) return rec
  const settings = rec.settings
  const scope = refreshScope(settings, want.resource) // throws when the grant lacks the resource
  const rt = rec.grant?.refreshToken
  if (!rt) {
    const err = noRefreshToken(settings)
    await recordFailure(ctx, rec, err)
    throw err
  }
  const { refreshGrant } = await import('../oauth/grants.js')
  // a connection that failed with no HTTP answer may have failed after the server rotated the
  // refresh token: remembered, to explain an invalid_grant that follows
  let answerMaybeLost = rec.lastError?.answerMaybeLost === true && ctx.now() - rec.lastError.at < LOST_ANSWER_WINDOW_MS
  const toError = (e: unknown): MailkeyError => {
    let err = asMailkeyError(e, settings.email)
    if (err.reauthRequired && err.oauthError === 'invalid_grant' && (answerMaybeLost || want.cutOffRefreshBy))
      err = lostAnswer(err, settings.email, answerMaybeLost ? undefined : want.cutOffRefreshBy)
    if (noAnswer(err)) answerMaybeLost = true
    return err
  }
  const s = ctx.settings
  let unstored: unknown
  try {
    return await withRetry(
      async () => {
        const ts = await refreshGrant(settings, new Secret(rt), {
          account: settings.email,
          // the request carries the refresh token; the access tokens are the others a server could echo
          secrets: accessTokens(rec).map((t) => new Secret(t)),
          ...(want.signal ? { signal: want.signal } : {}),
          timeoutMs: s.httpTimeoutMs,
          ...(ctx.fetch ? { fetch: ctx.fetch } : {}),
          ...(scope ? { scope } : {}),
        })
        const next: AccountRecord = {
          ...rec,
          state: 'active',
          grant: nextGrant(rec.grant, ts, ctx.now(), want.resource),
        }
        delete next.lastError
        try {
          await ctx.store.write(next) // B2
        } catch (e) {
          unstored = e // the server answered: asking again would present a token it may have replaced
          throw e
        }
        return next
      },
      {
        maxAttempts: s.maxAttempts,
        maxRetryAfterSec: s.maxRetryAfterSec,
        sleep: ctx.sleep,
        random: ctx.random,
        account: settings.email,
        toError,
        final: (e) => e === unstored,
        ...(want.signal ? { signal: want.signal } : {}),
      },
    )
  } catch (e) {
    const err = asMailkeyError(e, settings.email) // withRetry rejects with MailkeyErrors
    await recordFailure(ctx, rec, err, want.resource)
    throw err
  }
}

function noRefreshToken(settings: AccountSettings): ReauthRequiredError {
  return new ReauthRequiredError(
    ERR.NO_REFRESH_TOKEN,
    `there is no refresh token for "${settings.email}"; the server did not issue one at sign-in`,
    {
      account: settings.email,
      hint: noRefreshTokenHint(presetNamed(settings.provider)),
    },
  )
}

/**
 * The scope parameter of a refresh: for another resource, its scopes (and offline_access, so a
 * rotated refresh token comes back); for the mail servers of a grant that covers other resources
 * too, the mail scopes (the server must not pick the resource); else none, as before (RFC 6749 §6:
 * the scope granted).
 */
export function refreshScope(settings: AccountSettings, resource: ResourceName | undefined): string[] | undefined {
  const other = settings.resources ?? {}
  if (resource === undefined) return Object.keys(other).length ? settings.scopes : undefined
  const scopes = other[resource]?.scopes
  if (!scopes) throw notGranted(settings, resource)
  const offline = settings.scopes.includes('offline_access') && !scopes.includes('offline_access')
  return offline ? [...scopes, 'offline_access'] : scopes
}

function notGranted(settings: AccountSettings, resource: ResourceName): ReauthRequiredError {
  return new ReauthRequiredError(
    ERR.GRAPH_NOT_GRANTED,
    `the sign-in of "${settings.email}" did not ask for Microsoft ${resource === 'graph' ? 'Graph' : resource} (Mail.Send)`,
    { account: settings.email, hint: `Run "mailkey add ${settings.email} --graph" to sign in with it.` },
  )
}

/** B4: remember the failure in the record. The grant is kept in every case: a re-auth error is recorded, never "fixed" by deleting. */
async function recordFailure(
  ctx: RefreshContext,
  rec: AccountRecord,
  err: MailkeyError,
  resource?: ResourceName,
): Promise<void> {
  const next: AccountRecord = {
    ...rec,
    lastError: { ...lastErrorOf(err, ctx.now()), ...(resource ? { resource } : {}) },
  }
  // Only a mail refresh marks the grant dead: a refusal for another resource (Graph's consent,
  // a Conditional Access rule aimed at Graph) leaves the mail servers working, and a grant that is
  // dead for both is found dead by the next mail refresh.
  if (err.reauthRequired && resource === undefined) next.state = 'reauth'
  try {
    await ctx.store.write(next)
  } catch {
    /* the original error matters more */
  }
}

/** Every access token the record holds (the mail one and other resources'), for redaction. */
function accessTokens(rec: AccountRecord): string[] {
  const g = rec.grant
  const other = Object.values(g?.resources ?? {}).map((t) => t?.accessToken)
  return [g?.accessToken, ...other].filter((t): t is string => typeof t === 'string')
}
