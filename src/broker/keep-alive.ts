/**
 * Keeping grants alive (issue 5): Microsoft drops a refresh token unused for 90 days, so a
 * long-running mailkey (the proxy) refreshes such grants well before their idle limit, and says
 * when one will end regardless (broker/horizon.ts).
 *
 * Owns: which grants need a keep-alive refresh and the report of one pass. Must not: schedule
 * (the caller decides how often), print or log.
 */
import { accountId } from '../domain/account.js'
import type { AccountRecord, AccountSettings } from '../domain/account.js'
import type { GrantPolicy } from './horizon.js'
import { describeHorizon, grantHorizon, needsKeepAlive } from './horizon.js'

/** What one pass did for one account; only accounts with something to say are reported. */
export interface KeepAliveNote {
  account: string
  /** a keep-alive refresh ran: how it went */
  refresh?: { ok: true } | { ok: false; message: string }
  /** the grant ends soon however it is used: what to tell the user */
  ending?: string
}

/** One pass over the active accounts: refresh those whose idle clock passed half its span. */
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

export async function keepAlivePass(broker: KeepAliveBroker): Promise<KeepAliveNote[]> {
  const notes: KeepAliveNote[] = []
  const { records } = await broker.store.list()
  for (const r of records) {
    if (r.state !== 'active') continue
    const account = r.settings.email
    const policy = await broker.grantPolicy(r.settings)
    const note: KeepAliveNote = { account }
    let grant = r.grant
    if (needsKeepAlive(grant, policy, broker.now())) {
      try {
        await broker.getAccessToken(account, { forceRefresh: true })
        note.refresh = { ok: true }
        // the refresh restarted the idle clock: judge the horizon on the new record
        grant = (await broker.store.read(accountId(account), { secrets: false }).catch(() => r))?.grant
      } catch (e) {
        note.refresh = { ok: false, message: (e as Error).message }
      }
    }
    const h = grantHorizon(grant, policy, broker.now())
    if (h?.warn) note.ending = describeHorizon(account, h)
    if (note.refresh || note.ending) notes.push(note)
  }
  return notes
}
