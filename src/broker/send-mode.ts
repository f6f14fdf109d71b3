/**
 * How an account submits mail (issue 16): its own choice (`mailkey add --graph` or `--send`, or
 * the switch an `auto` account makes after SMTP answered 5.7.139), else its provider's `send`
 * (config.toml first, then the preset: Microsoft's is `auto`), else SMTP.
 *
 * Owns: that rule and remembering a switch. Must not: talk to a server.
 */
import { accountId, type SendMode } from '../domain/account.js'
import { WRITE_LOCK_TIMEOUT_MS } from '../config/settings.js'
import { presetNamed } from '../providers/registry.js'
import type { Broker } from './broker.js'

export async function sendModeOf(broker: Broker, account: string): Promise<SendMode> {
  const rec = await broker.record(account)
  if (!rec) return 'smtp'
  if (rec.settings.send) return rec.settings.send
  const configured = (await broker.config.loadOrNothing())?.providers.get(rec.settings.provider)
  return configured?.send ?? presetNamed(rec.settings.provider)?.send ?? 'smtp'
}

/** Store the account's send mode, under the account's lock (a refresh may be writing the record). */
export async function rememberSendMode(broker: Broker, account: string, mode: SendMode): Promise<void> {
  const id = accountId(account)
  await broker.flight.exclusive(id, WRITE_LOCK_TIMEOUT_MS, async () => {
    const rec = await broker.store.read(id)
    if (!rec || rec.settings.send === mode) return
    await broker.store.write({ ...rec, settings: { ...rec.settings, send: mode }, updatedAt: broker.now() })
  })
}
