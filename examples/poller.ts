/**
 * A mailbox poller on mailkey's library: before every connection it asks mailkey for an access
 * token (cached, or refreshed once machine-wide), logs in to the account's own IMAP server with
 * imapflow (XOAUTH2), prints each new INBOX message as a JSON line, and logs out.
 *
 * Failures are handled the way a long-running job should:
 * - the server refuses a token that looked valid: force one refresh and try again at once;
 * - the grant needs a new sign-in (revoked, expired, password changed): say which command to run
 *   and stop with exit code 77 (sysexits EX_NOPERM), the same as `mailkey token`;
 * - a network or provider outage: say so and try again at the next round.
 *
 *   node --import tsx examples/poller.ts you@outlook.com [--once] [--interval SECONDS]
 *
 * A private CA (a test server) comes from NODE_EXTRA_CA_CERTS, as for any Node program.
 */
import { ImapFlow } from 'imapflow'
import { createMailkey, isMailkeyError } from 'mailkey'

const [arg, ...rest] = process.argv.slice(2)
if (!arg) {
  console.error('usage: poller.ts <email> [--once] [--interval SECONDS]')
  process.exit(64)
}
const email: string = arg
const once = rest.includes('--once')
const intervalSec = Number(rest[rest.indexOf('--interval') + 1] ?? 60) || 60

const mk = createMailkey()
const status = await mk.status(email)
if (!status.servers.imap) {
  console.error(`${email} has no IMAP server: run "mailkey add ${email} --imap-url imaps://host:993"`)
  process.exit(78)
}
const server = new URL(status.servers.imap)
let lastUid = 0

/** One round: token, connect, new messages, logout. Returns false when the poller must stop. */
async function round(): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    let client: ImapFlow | undefined
    try {
      // before every connection: mailkey hands out the cached token or refreshes it first
      const { token, user } = await mk.getAccessToken(email, { forceRefresh: attempt === 1 })
      client = new ImapFlow({
        host: server.hostname,
        port: Number(server.port) || (server.protocol === 'imaps:' ? 993 : 143),
        secure: server.protocol === 'imaps:',
        auth: { user, accessToken: token.reveal() },
        logger: false,
      })
      await client.connect()
      const lock = await client.getMailboxLock('INBOX')
      try {
        for await (const msg of client.fetch(`${lastUid + 1}:*`, { uid: true, envelope: true }, { uid: true })) {
          if (msg.uid <= lastUid) continue // "n:*" always returns the last message
          lastUid = msg.uid
          console.log(JSON.stringify({ uid: msg.uid, subject: msg.envelope?.subject ?? '' }))
        }
      } finally {
        lock.release()
      }
      await client.logout()
      return true
    } catch (e) {
      client?.close()
      if (isMailkeyError(e) && e.reauthRequired) {
        console.error(`${e.message}\nRun "mailkey add ${email}" to sign in again, then start the poller again.`)
        process.exitCode = 77
        return false
      }
      if ((e as { authenticationFailed?: boolean }).authenticationFailed && attempt === 0) {
        console.error('the server refused the token; refreshing it once')
        continue
      }
      // an outage (mailkey's transient errors, a refused or dropped connection): next round
      console.error(`this round failed, trying again in ${intervalSec} s: ${(e as Error).message}`)
      process.exitCode = 75
      return true
    }
  }
  return true
}

for (;;) {
  if (!(await round()) || once) break
  await new Promise((r) => setTimeout(r, intervalSec * 1000))
}
