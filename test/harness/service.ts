// Token service replicas for the tests (issue 14): `mailkey serve` processes, each a fleet host
// of its own (own HOME, the fleet's store URL and key), listening on a free loopback port (or as
// told, with TLS, under another user or in a network namespace); an API key made on a host; a small
// HTTP(S) client for the API; and a directory laid out as systemd lays out credentials.
import assert from 'node:assert/strict'
import { chmod, chown, copyFile, mkdir, writeFile } from 'node:fs/promises'
import { request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { noteSecrets, spawnCli, type LiveCli } from './cli.js'
import type { FleetStore, Host } from './fleet.js'

export interface Replica {
  host: Host
  cli: LiveCli
  url: string
  /** everything it printed so far (its JSON log) */
  output(): string
}

export interface ReplicaOptions {
  /** more environment for the host */
  env?: Record<string, string>
  /** more `mailkey serve` flags */
  args?: string[]
  /** the host's config.toml */
  config?: string
  /** --listen (default 127.0.0.1:0); undefined with `bareEnv` leaves it to MAILKEY_SERVE_LISTEN */
  listen?: string | null
  /** run with exactly this environment instead of the host's (a container or a systemd unit) */
  bareEnv?: Record<string, string>
  /** a command that execs the rest (setpriv, unshare) */
  wrap?: string[]
}

export async function startReplica(fleet: FleetStore, name: string, o: ReplicaOptions = {}): Promise<Replica> {
  const host = await fleet.host(name, o.env ?? {})
  if (o.config !== undefined) await writeConfig(host, o.config)
  const listen = o.listen === null ? [] : ['--listen', o.listen ?? '127.0.0.1:0']
  const cli = spawnCli(['serve', ...listen, ...(o.args ?? [])], o.bareEnv ?? host.env, o.wrap)
  const ev = await cli.event('listening', 30_000)
  let out = ''
  cli.child.stdout.on('data', (d: string) => (out += d))
  return { host, cli, url: String(ev.url), output: () => out + cli.stderr() }
}

/** `mailkey serve key add NAME SCOPE... --json` on `host`: what it printed; the key noted as a secret. */
export async function addApiKey(host: Host, name: string, scope: string[]): Promise<{ name: string; key: string }> {
  const add = await host.cli(['serve', 'key', 'add', name, ...scope, '--json'])
  assert.equal(add.code, 0, add.stderr)
  const k = JSON.parse(add.stdout) as { name: string; key: string }
  await noteSecrets(k.key)
  return k
}

/** Write the host's config.toml. */
export async function writeConfig(host: Host, text: string): Promise<void> {
  const dir = join(host.env.XDG_CONFIG_HOME as string, 'mailkey')
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await writeFile(join(dir, 'config.toml'), text, { mode: 0o600 })
}

export interface ApiAnswer {
  status: number
  headers: Headers
  text: string
  body: Record<string, unknown>
}

export async function api(base: string, path: string, key?: string, ca?: string): Promise<ApiAnswer> {
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {}
  const r = ca ? await httpsGet(new URL(path, base), headers, ca) : await fetch(new URL(path, base), { headers })
  const text = await r.text()
  let body: Record<string, unknown> = {}
  try {
    body = JSON.parse(text) as Record<string, unknown>
  } catch {
    /* metrics, or nothing */
  }
  return { status: r.status, headers: r.headers, text, body }
}

/** The problem document of an answer, checked for its shape (RFC 9457). */
export function problemOf(a: ApiAnswer, kind: string): Record<string, unknown> {
  assert.equal(a.headers.get('content-type'), 'application/problem+json', a.text)
  assert.equal(a.body.type, `urn:mailkey:problem:${kind}`, a.text)
  assert.equal(a.body.status, a.status)
  assert.equal(typeof a.body.title, 'string')
  assert.equal(typeof a.body.detail, 'string')
  return a.body
}

export const tokenPath = (email: string, q = ''): string =>
  `/v1/accounts/${encodeURIComponent(email)}/token${q ? `?${q}` : ''}`

/** GET over https trusting `ca` (fetch cannot be given a CA), as much of a Response as api() needs */
function httpsGet(
  url: URL,
  headers: Record<string, string>,
  ca: string,
): Promise<{ status: number; headers: Headers; text(): Promise<string> }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { headers, ca, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d))
      res.on('error', reject)
      res.on('end', () => {
        const h = new Headers()
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v)
        resolve({ status: res.statusCode ?? 0, headers: h, text: async () => body })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

/**
 * A directory as systemd makes $CREDENTIALS_DIRECTORY for a service running as `uid`: each file a
 * copy, mode 0440 (how an ACL-granted 0400 credential looks to stat), readable by that user.
 */
export async function credentialsDir(
  dir: string,
  files: Record<string, { from?: string; text?: string }>,
  uid?: number,
): Promise<string> {
  await mkdir(dir, { mode: 0o700 })
  for (const [name, f] of Object.entries(files)) {
    const path = join(dir, name)
    if (f.from !== undefined) await copyFile(f.from, path)
    else await writeFile(path, f.text ?? '')
    await chmod(path, 0o440)
    if (uid !== undefined) await chown(path, uid, uid)
  }
  if (uid !== undefined) await chown(dir, uid, uid)
  await chmod(dir, 0o500)
  return dir
}
