// The usual way a test gets a signed-in account: `mailkey add EMAIL --device` run for real, its
// code approved in the lab's OAuth server as EMAIL. The tokens it stored are noted as secrets for
// the leak checks (noteSecrets, and the caller's own list) and returned.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { noteSecrets, spawnCli, type CliResult } from './cli.js'
import { recordFile } from './tmp-home.js'
import { LAB_PUBLIC_CLIENT_ID, MAIL_SCOPES, type LabServer } from './oauth-server.js'

/** The scopes a mail account asks the lab for: IMAP, POP3, SMTP and a refresh token. */
export const LAB_SCOPE = [...MAIL_SCOPES, 'offline_access'].join(' ')

/** The lab as an OAuth server given by hand: its issuer, public client and LAB_SCOPE. */
export function labFlags(lab: LabServer, scope = LAB_SCOPE): string[] {
  return ['--issuer', lab.issuer, '--client-id', LAB_PUBLIC_CLIENT_ID, '--scope', scope]
}

export interface SignedIn {
  accessToken: string
  refreshToken: string
  /** what `mailkey add` printed and its exit code (0) */
  result: CliResult
}

/** The tokens in the account's (plain) record, noted as secrets for the leak checks, and in `secrets` when given. */
export async function rememberTokens(
  env: Record<string, string>,
  email: string,
  secrets?: string[],
): Promise<{ accessToken: string; refreshToken: string }> {
  const { grant } = JSON.parse(await readFile(recordFile(env, email), 'utf8')) as {
    grant: { accessToken: string; refreshToken: string }
  }
  await noteSecrets(grant.accessToken, grant.refreshToken)
  for (const s of [grant.accessToken, grant.refreshToken]) if (s) secrets?.push(s)
  return { accessToken: grant.accessToken, refreshToken: grant.refreshToken }
}

/**
 * `mailkey add EMAIL --device --json FLAGS` (FLAGS: labFlags(lab) unless given, then servers, CA
 * and so on), approved as EMAIL. Fails the test unless it exits 0. `secrets`, when given, gets
 * the two tokens too.
 */
export async function signIn(
  lab: LabServer,
  env: Record<string, string>,
  email: string,
  flags: string[] = labFlags(lab),
  secrets?: string[],
): Promise<SignedIn> {
  const cli = spawnCli(['add', email, '--device', '--json', ...flags], env)
  await lab.approveDevice(String((await cli.event('device_code')).user_code), { login: email })
  const result = await cli.done
  assert.equal(result.code, 0, result.stderr)
  return { ...(await rememberTokens(env, email, secrets)), result }
}
