/**
 * Keeping grants alive (issue 5): Microsoft drops a refresh token unused for 90 days, so a
 * long-running mailkey (the proxy) refreshes such grants well before their idle limit, and says
 * when one will end regardless (broker/horizon.ts).
 *
 * Owns: which grants need a keep-alive refresh and the report of one pass. Must not: schedule
 * (the caller decides how often), print or log.
 */
import { accountId } from '../domain/account.js'
import { shArg } from '../core/address.js'
import type { AccountRecord, AccountSettings } from '../domain/account.js'
import type { GrantPolicy } from './horizon.js'
import { describeHorizon, grantHorizon, needsKeepAlive } from './horizon.js'

/** What one pass did for one account; only accounts with something to say are reported. */
export interface KeepAliveNote {
  account: string
  /** a keep-alive refresh ran: how it went */
  refresh?: { ok: true } | { ok: false; message: string; transient?: boolean; reauth?: boolean }
  /** the grant ends soon however it is used: what to tell the user */
  ending?: string
  /** the grant was refused: only a sign-in helps (the message says the command) */
  reauth?: string
  /** due, but left for a later pass (this pass reached its refresh limit) */
  deferred?: true
}

/** How a pass treats the provider: many accounts are refreshed one after another, spaced. */
export interface PassOptions {
  /** refreshes in one pass at most; the rest wait for the next (default unlimited) */
  maxRefreshes?: number
  /** pause between two refreshes, ms (default 0) */
  gapMs?: number
  sleep?: (ms: number) => Promise<void>
}

/** What a pass needs of the broker (the Broker is one): no import of broker.ts, so no cycle. */
export interface KeepAliveBroker {
  store: {
    list(): Promise<{ records: AccountRecord[] }>
    read(id: string, o: { secrets: false }): Promise<AccountRecord | undefined>
  }
  grantPolicy(s: AccountSettings): Promise<GrantPolicy>
  now(): number
  getAccessToken(account: string, o: { forceRefresh: true }): Promise<unknown>
}

/**
 * One pass over the accounts: refresh those whose idle clock passed their keep-alive point (half the
 * idle span, spread per account: broker/horizon.ts), spaced and capped as `o` says; report grants
 * that end soon and accounts that need a sign-in. On a shared store, passes on several hosts at
 * once cost one refresh per account (the fenced flight: a forced refresh that another host made
 * after this one asked is its answer).
 */
export async function keepAlivePass(broker: KeepAliveBroker, o: PassOptions = {}): Promise<KeepAliveNote[]> {
  const notes: KeepAliveNote[] = []
  const { records } = await broker.store.list()
  const budget = { refreshed: 0 }
  for (const r of records) {
    const note = await passOne(broker, r, o, budget)
    if (note.refresh || note.ending || note.deferred || note.reauth) notes.push(note)
  }
  return notes
}

async function passOne(
  broker: KeepAliveBroker,
  listed: AccountRecord,
  o: PassOptions,
  budget: { refreshed: number },
): Promise<KeepAliveNote> {
  const account = listed.settings.email
  const note: KeepAliveNote = { account }
  const policy = await broker.grantPolicy(listed.settings)
  let r: AccountRecord | undefined = listed
  // looked at again just before refreshing: another host's sweep (or any refresh) since the
  // listing has restarted the idle clock, and a forced refresh now would be one too many
  if (r.state === 'active' && needsKeepAlive(r.grant, policy, broker.now(), account)) r = await current(broker, r)
  if (!r) return note
  if (r.state !== 'active') return { ...note, reauth: reauthText(r) }
  let grant = r.grant
  if (needsKeepAlive(grant, policy, broker.now(), account)) {
    if (o.maxRefreshes !== undefined && budget.refreshed >= o.maxRefreshes) note.deferred = true
    else {
      if (budget.refreshed > 0 && o.gapMs) await (o.sleep ?? defaultSleep)(o.gapMs)
      budget.refreshed++
      note.refresh = await keepAliveRefresh(broker, account)
      // the refresh restarted the idle clock: judge the horizon on the new record
      if (note.refresh.ok) grant = (await current(broker, r))?.grant
      // the grant is dead: only a sign-in helps, and the report says so (exit 77 in `mailkey sweep`)
      else if (note.refresh.reauth)
        note.reauth = `${note.refresh.message}; run "mailkey add ${shArg(account)}" to sign in again`
    }
  }
  const h = grantHorizon(grant, policy, broker.now())
  if (h?.warn) note.ending = describeHorizon(account, h)
  return note
}

async function current(broker: KeepAliveBroker, r: AccountRecord): Promise<AccountRecord | undefined> {
  return await broker.store.read(accountId(r.settings.email), { secrets: false }).catch(() => r)
}

/** One forced refresh; the refresh restarts the idle clock. */
async function keepAliveRefresh(
  broker: KeepAliveBroker,
  account: string,
): Promise<NonNullable<KeepAliveNote['refresh']>> {
  try {
    await broker.getAccessToken(account, { forceRefresh: true })
    return { ok: true }
  } catch (e) {
    const err = e as { message?: string; transient?: boolean; reauthRequired?: boolean }
    return {
      ok: false,
      message: String(err.message ?? e),
      transient: err.transient === true,
      ...(err.reauthRequired === true ? { reauth: true } : {}),
    }
  }
}

function reauthText(r: AccountRecord): string {
  const why = r.lastError?.message ? `${r.lastError.message}; ` : ''
  return `${why}run "mailkey add ${shArg(r.settings.email)}" to sign in again`
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
