// Token service replicas for the tests (issue 14): `mailkey serve` processes, each a fleet host
// of its own (own HOME, the fleet's store URL and key), listening on a free loopback port; and a
// small HTTP client for the API.
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { spawnCli, type LiveCli } from './cli.js'
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
}

export async function startReplica(fleet: FleetStore, name: string, o: ReplicaOptions = {}): Promise<Replica> {
  const host = await fleet.host(name, o.env ?? {})
  if (o.config !== undefined) await writeConfig(host, o.config)
  const args = o.args ?? []
  const cli = spawnCli(['serve', '--listen', '127.0.0.1:0', ...args], host.env)
  const ev = await cli.event('listening', 30_000)
  let out = ''
  cli.child.stdout.on('data', (d: string) => (out += d))
  return { host, cli, url: String(ev.url), output: () => out + cli.stderr() }
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

export async function api(base: string, path: string, key?: string): Promise<ApiAnswer> {
  const r = await fetch(new URL(path, base), { headers: key ? { authorization: `Bearer ${key}` } : {} })
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
