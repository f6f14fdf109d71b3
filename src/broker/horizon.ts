/**
 * When a grant stops working without anyone revoking it, and when to say so. Two horizons:
 * - idle: a refresh token unused for N days dies (Microsoft: 90 days of inactivity). Every refresh
 *   uses it, so the clock runs from the last refresh (or from when the token was received).
 * - max-age: a grant lives N days however it is used (Google apps in "testing": 7 days).
 * A warning is due when less than a quarter of the span is left, and at most 14 days before.
 *
 * Owns: the arithmetic. Must not: do I/O.
 */
import { grantHas } from '../store/seal.js'
import type { GrantRecord } from '../domain/account.js'
import { shArg } from '../core/address.js'

export interface GrantPolicy {
  idleDays?: number
  maxAgeDays?: number
}

export interface GrantHorizon {
  /** epoch ms when the grant stops working */
  at: number
  kind: 'idle' | 'max-age'
  /** the span in days (the policy's number) */
  days: number
  /** whole days left (negative: already past) */
  daysLeft: number
  /** time to tell the user */
  warn: boolean
}

const DAY = 86_400_000

/** The last time the refresh token was used or received (what the idle clock counts from). */
export function lastGrantUse(g: GrantRecord): number {
  return Math.max(g.refreshedAt ?? 0, g.refreshTokenAt ?? 0, g.grantedAt)
}

/** The nearer of the grant's horizons, or undefined when its provider has none. */
export function grantHorizon(g: GrantRecord | undefined, policy: GrantPolicy, now: number): GrantHorizon | undefined {
  if (!g || !grantHas(g, 'refreshToken')) return undefined
  const options: { at: number; kind: GrantHorizon['kind']; days: number }[] = []
  if (policy.idleDays)
    options.push({ at: lastGrantUse(g) + policy.idleDays * DAY, kind: 'idle', days: policy.idleDays })
  if (policy.maxAgeDays)
    options.push({ at: g.grantedAt + policy.maxAgeDays * DAY, kind: 'max-age', days: policy.maxAgeDays })
  const h = options.sort((a, b) => a.at - b.at)[0]
  if (!h) return undefined
  const left = h.at - now
  return { ...h, daysLeft: Math.floor(left / DAY), warn: left < Math.min(14 * DAY, (h.days * DAY) / 4) }
}

/**
 * The keep-alive: refresh an idle-limited grant once half its idle span has passed, plus up to a
 * tenth of the span more depending on the account (`spreadKey`), so that accounts signed in
 * together (a fleet's hundreds of mailboxes) are not all refreshed in the same pass.
 */
export function needsKeepAlive(g: GrantRecord | undefined, policy: GrantPolicy, now: number, spreadKey = ''): boolean {
  if (!g || !grantHas(g, 'refreshToken') || !policy.idleDays) return false
  const span = policy.idleDays * DAY
  return now - lastGrantUse(g) > span / 2 + (spreadOf(spreadKey) * span) / 10
}

/** A stable number in [0, 1) for a key (FNV-1a): the same account always gets the same offset. */
export function spreadOf(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0
  return key === '' ? 0 : h / 2 ** 32
}

/** One line for people: what happens when, and what to do. */
export function describeHorizon(email: string, h: GrantHorizon): string {
  const when = new Date(h.at).toISOString().slice(0, 10)
  if (h.kind === 'idle') {
    return h.daysLeft < 0
      ? `the grant of ${email} was unused for more than ${h.days} days and has likely expired (${when}); run "mailkey add ${shArg(email)}" to sign in again`
      : `the grant of ${email} expires on ${when} (in ${h.daysLeft} days) unless it is used: unused refresh tokens live ${h.days} days; "mailkey token ${shArg(email)} --force-refresh" (or a running "mailkey proxy") keeps it alive`
  }
  return h.daysLeft < 0
    ? `the grant of ${email} ended on ${when} (grants of this provider live ${h.days} days); run "mailkey add ${shArg(email)}" to sign in again`
    : `the grant of ${email} ends on ${when} (in ${h.daysLeft} days; grants of this provider live ${h.days} days); run "mailkey add ${shArg(email)}" before then`
}
