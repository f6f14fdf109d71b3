/**
 * Sending mail with nodemailer and mailkey's library: the token comes from mailkey right before
 * the message goes out; a 535 for a token that looked valid gets one forced refresh and one more
 * try; a grant that needs a new sign-in stops with the command to run (exit 77).
 *
 *   node --import tsx examples/sender.ts you@outlook.com to@example.com "Subject" < body.txt
 */
import nodemailer from 'nodemailer'
import { createMailkey, isMailkeyError } from 'mailkey'

const [email, to, subject] = process.argv.slice(2)
if (!email || !to || subject === undefined) {
  console.error('usage: sender.ts <email> <to> <subject> < body')
  process.exit(64)
}
const chunks: Buffer[] = []
for await (const c of process.stdin) chunks.push(c as Buffer)
const text = Buffer.concat(chunks).toString('utf8')

const mk = createMailkey()
const status = await mk.status(email)
if (!status.servers.smtp) {
  console.error(`${email} has no SMTP server: run "mailkey add ${email} --smtp-url smtp://host:587"`)
  process.exit(78)
}
const server = new URL(status.servers.smtp)

for (let attempt = 0; attempt < 2; attempt++) {
  try {
    const { token, user } = await mk.getAccessToken(email, { forceRefresh: attempt === 1 })
    const transport = nodemailer.createTransport({
      host: server.hostname,
      port: Number(server.port) || (server.protocol === 'smtps:' ? 465 : 587),
      secure: server.protocol === 'smtps:',
      requireTLS: server.protocol !== 'smtps:', // STARTTLS, never plain text
      auth: { type: 'OAuth2', user, accessToken: token.reveal() },
    })
    const info = await transport.sendMail({ from: email, to, subject, text })
    console.log(JSON.stringify({ messageId: info.messageId, accepted: info.accepted }))
    process.exit(0)
  } catch (e) {
    if (isMailkeyError(e) && e.reauthRequired) {
      console.error(`${e.message}\nRun "mailkey add ${email}" to sign in again.`)
      process.exit(77)
    }
    if ((e as { code?: string }).code === 'EAUTH' && attempt === 0) {
      console.error('the server refused the token; refreshing it once')
      continue
    }
    console.error(`not sent: ${(e as Error).message}`)
    process.exit(isMailkeyError(e) ? e.exitCode : 75)
  }
}
