// A fleet for the shared-store tests: one store engine (PostgreSQL or Redis), one store key, and any
// number of "hosts", each a throw-away HOME of its own (own config and state dirs) with the same
// MAILKEY_STORE_URL, password variable (PGPASSWORD, REDISCLI_AUTH) and key file, running the real CLI. Plus the checker over the OAuth server's refresh
// log and the store (docs/adr/0011): each refresh token presented at most once, except the one
// retry an unfinished refresh's intent allows; the stored refresh token is the server's latest.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { makeTmpHome, type TmpHome } from './tmp-home.js'
import { noteSecrets, runCli, type CliResult } from './cli.js'
import type { LabServer, RefreshLogEntry } from './oauth-server.js'
import { LAB_PUBLIC_CLIENT_ID, MAIL_SCOPES } from './oauth-server.js'
import { spawnCli } from './cli.js'
import { openSharedStore } from '../../src/store/shared/open-shared.js'
import type { SharedStore } from '../../src/store/shared/shared-store.js'
import type { AccountRecord } from '../../src/domain/account.js'

export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')

export interface Host {
  name: string
  home: TmpHome
  env: Record<string, string>
  cli(args: string[], stdin?: string): Promise<CliResult>
}

export interface FleetStore {
  url: string
  keyFile: string
  /** variables every host gets besides its own HOME */
  env: Record<string, string>
  homes: TmpHome[]
  host(name: string, extra?: Record<string, string>): Promise<Host>
  /** the store as the library opens it, from the test process */
  open(): Promise<SharedStore>
  record(email: string): Promise<AccountRecord | undefined>
  /** mark the stored access token expired (a lease-taking write, as any host's), so the next ask refreshes */
  expire(email: string): Promise<void>
  cleanup(): Promise<void>
}

/** The store engine a fleet runs on: its URL without the password, and the variables that carry it. */
export interface FleetEngine {
  url: string
  env(): Record<string, string>
}

/** A key file (0600) and a way to make hosts on `pg` (any FleetEngine). `extra` goes to every host. */
export async function makeFleet(pg: FleetEngine, extra: Record<string, string> = {}): Promise<FleetStore> {
  const keyHome = await makeTmpHome()
  const keyFile = join(keyHome.dir, 'store.key')
  await writeFile(keyFile, `${Buffer.alloc(32, 7).toString('base64')}\n`, { mode: 0o600 })
  const env = {
    MAILKEY_STORE_URL: pg.url,
    MAILKEY_STORE_KEY_FILE: keyFile,
    ...pg.env(),
    ...extra,
  }
  const homes: TmpHome[] = [keyHome]
  let opened: SharedStore | undefined
  const fleet: FleetStore = {
    url: pg.url,
    keyFile,
    env,
    homes,
    async host(name, more = {}) {
      const home = await makeTmpHome()
      homes.push(home)
      const henv = { ...home.env, ...env, ...more }
      return {
        name,
        home,
        env: henv,
        cli: (args, stdin) => runCli(args, henv, stdin === undefined ? undefined : { stdin }),
      }
    },
    async open() {
      opened ??= await openSharedStore({ env: { ...process.env, ...env }, url: pg.url })
      return opened
    },
    async record(email) {
      return await (await fleet.open()).read(email)
    },
    async expire(email) {
      const store = await fleet.open()
      const rec = await store.read(email)
      assert.ok(rec?.grant, `no grant for ${email}`)
      await store.write({ ...rec, grant: { ...rec.grant, expiresAt: Date.now() - 1000 } })
    },
    async cleanup() {
      await opened?.close()
      await Promise.all(homes.map((h) => h.cleanup()))
    },
  }
  return fleet
}

/** `mailkey add` flags for an account of the lab's public client, with a refresh token. */
export const labSignInFlags = (lab: LabServer): string[] => [
  '--issuer',
  lab.issuer,
  '--client-id',
  LAB_PUBLIC_CLIENT_ID,
  '--scope',
  [...MAIL_SCOPES, 'offline_access'].join(' '),
]

/** `mailkey add EMAIL --device` on `host`, approved in the lab; the tokens noted as secrets. */
export async function signInShared(
  lab: LabServer,
  host: Host,
  fleet: FleetStore,
  email: string,
  flags = labSignInFlags(lab),
): Promise<AccountRecord> {
  const cli = spawnCli(['add', email, '--device', '--json', ...flags], host.env)
  await lab.approveDevice(String((await cli.event('device_code')).user_code), { login: email })
  const result = await cli.done
  assert.equal(result.code, 0, result.stderr)
  const rec = await fleet.record(email)
  assert.ok(rec?.grant?.refreshToken, 'the shared store holds the grant')
  await noteSecrets(rec.grant.accessToken, rec.grant.refreshToken)
  return rec
}

export interface CheckerReport {
  refreshes: number
  /** refresh tokens presented more than once */
  reused: string[]
  /** the stored refresh token is the last one the server issued */
  storedIsLatest: boolean
}

/**
 * The checker: over the refresh log of `lab` (for this client) since `fromIndex`, and the store.
 * `allowedRetries`: presentations of one token beyond the first that the intent rule explains.
 */
export async function checkFleet(
  lab: LabServer,
  fleet: FleetStore,
  email: string,
  fromIndex = 0,
): Promise<CheckerReport> {
  const log: RefreshLogEntry[] = lab.refreshLog.slice(fromIndex)
  const seen = new Map<string, number>()
  for (const e of log) seen.set(e.presented, (seen.get(e.presented) ?? 0) + 1)
  const reused = [...seen].filter(([, n]) => n > 1).map(([h]) => h)
  const issued = log.filter((e) => e.issuedRefresh).map((e) => e.issuedRefresh as string)
  const rec = await fleet.record(email)
  const stored = rec?.grant?.refreshToken ? sha256(rec.grant.refreshToken) : undefined
  const latest = issued.at(-1)
  return { refreshes: log.length, reused, storedIsLatest: latest === undefined || stored === latest }
}

/**
 * The processes of a host: every process whose environment has the host's HOME (the CLI and any
 * detached refresh worker it started; the tests run as root, so /proc/PID/environ is readable).
 */
export function hostProcesses(host: Host): number[] {
  const mark = `HOME=${host.env.HOME}\0`
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      if (readFileSync(`/proc/${name}/environ`, 'latin1').includes(mark)) pids.push(Number(name))
    } catch {
      /* gone meanwhile */
    }
  }
  return pids
}

/** Send `signal` to every process of the host: SIGKILL is the host dying, SIGSTOP a pause. */
export function signalHost(host: Host, signal: NodeJS.Signals): number[] {
  const pids = hostProcesses(host)
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch {
      /* gone meanwhile */
    }
  }
  return pids
}
