/**
 * `mailkey remove <email>`: revoke the grant at the server where it can be revoked (RFC 7009),
 * then delete it from the store.
 */
import { EXIT } from '../../errors.js'
import { createMailkey } from '../../mailkey.js'
import type { CliIO } from '../io.js'
import { passphrasePrompt } from '../io.js'
import { COMMON_FLAGS, needEmail, parse } from '../flags.js'
import { jsonLine } from '../json.js'

const HELP = `Usage: mailkey remove <email> [--no-revoke] [--json]

Revokes the refresh token at the provider when it has a revocation endpoint (Google does,
Microsoft does not: remove the app at https://account.live.com/consent/Manage or
https://myapps.microsoft.com), then deletes the account from the token store.
  --no-revoke   only delete it here
`

export async function run(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse('remove', args, { ...COMMON_FLAGS, 'no-revoke': { type: 'boolean' } }, 1)
  if (values.help) {
    io.stdout(HELP)
    return EXIT.OK
  }
  const email = needEmail('remove', positionals)
  const mk = createMailkey({ env: io.env, ...passphrasePrompt(io) })
  const r = await mk.remove(email, { revoke: values['no-revoke'] !== true })
  if (values.json) io.stdout(jsonLine('removed', { account: email, ...r }))
  const rev = r.revocation
  const revText =
    rev === 'revoked'
      ? 'revoked at the provider and '
      : rev === 'unsupported'
        ? ''
        : rev === 'skipped'
          ? ''
          : `not revoked at the provider (${rev.failed}), but `
  io.stderr(`Removed ${email}: ${revText}deleted from the token store.\n`)
  if (rev === 'unsupported')
    io.stderr(
      "The provider has no revocation endpoint; remove mailkey's access in your account's security settings if you want it gone there too.\n",
    )
  return EXIT.OK
}
