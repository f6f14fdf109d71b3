// The Graph lab of issue 16's end-to-end tests: the lab OAuth server (Graph as a second resource),
// one test CA for an SMTP submission testbed (535 5.7.139 for the mailboxes named) and the Graph
// sendMail emulator over HTTPS, a temporary home, and `mailkey add --device` that approves every
// device code it shows (two with --graph). Tokens the sign-in stored are noted as secrets.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeTestCA, type TestCA } from './certs.js'
import { startGraphServer, type GraphServer } from './graph-server.js'
import { startOAuthServer, type LabServer } from './oauth-server.js'
import { startSmtp, type Smtp } from './smtp-server.js'
import { makeTmpHome, recordFile, type TmpHome } from './tmp-home.js'
import { noteSecrets, spawnCli } from './cli.js'
import { labFlags } from './sign-in.js'
import { checkJsonOutput } from './json-output.js'

export interface GraphLab {
  lab: LabServer
  pki: TestCA
  smtp: Smtp
  graph: GraphServer
  home: TmpHome
  /** secrets seen (tokens of every sign-in), for the leak check */
  secrets: string[]
  /** the flags for the SMTP testbed and the CA (and the Graph emulator with `graph`) */
  serverFlags(graph: boolean): string[]
  /**
   * `mailkey add EMAIL --device --json` with the lab's flags and `flags`; every device code approved
   * as EMAIL, or as `codes[i]` says (another login, or declined)
   */
  add(
    email: string,
    flags: string[],
    codes?: { login?: string; deny?: boolean }[],
  ): Promise<{ code: number | null; stderr: string; codes: number }>
  /** the account's record, as stored (a plain store) */
  record(email: string): Promise<Record<string, any>>
  stop(): Promise<void>
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export async function startGraphLab(o: { smtpAuthDisabled: (user: string) => boolean }): Promise<GraphLab> {
  const lab = await startOAuthServer({ deviceInterval: 1 })
  const certDir = await mkdtemp(join(tmpdir(), 'mailkey-graph-e2e-'))
  const pki = await makeTestCA(certDir)
  const smtp = await startSmtp({
    introspect: (t, s) => lab.introspect(t, { service: s }),
    tls: pki,
    authDisabledFor: o.smtpAuthDisabled,
  })
  const graph = await startGraphServer({ introspect: (t) => lab.introspectGraph(t), tls: pki })
  const home = await makeTmpHome()
  const secrets: string[] = []
  const record = async (email: string): Promise<Record<string, any>> =>
    JSON.parse(await readFile(recordFile(home.env, email), 'utf8')) as Record<string, any>
  const noteRecord = async (email: string): Promise<void> => {
    const g = (await record(email)).grant
    const toks = [g.accessToken, g.refreshToken, g.resources?.graph?.accessToken] as (string | undefined)[]
    for (const t of toks) if (t) secrets.push(t)
    await noteSecrets(...toks)
  }
  return {
    lab,
    pki,
    smtp,
    graph,
    home,
    secrets,
    record,
    serverFlags: (withGraph) => [
      '--smtp-url',
      `smtp://localhost:${smtp.ports.submission}`,
      '--ca',
      pki.caFile,
      ...(withGraph ? ['--graph', '--graph-url', graph.url] : []),
    ],
    async add(email, flags, how = []) {
      const cli = spawnCli(['add', email, '--device', '--json', ...labFlags(lab), ...flags], home.env)
      let approved = 0
      while (cli.child.exitCode === null || cli.events('device_code').length > approved) {
        const codes = cli.events('device_code')
        if (codes.length > approved) {
          const o = how[approved] ?? {}
          await lab.approveDevice(String(codes[approved]?.user_code), {
            login: o.login ?? email,
            deny: o.deny === true,
          })
          approved++
        } else await sleep(100)
      }
      const r = await cli.done
      if (r.code === 0) {
        await noteRecord(email)
        checkJsonOutput(r.stdout, `mailkey add ${email} --device --json`) // device_code (purpose), graph, signed_in
      }
      return { code: r.code, stderr: r.stderr, codes: approved }
    },
    async stop() {
      await graph.close()
      await smtp.stop()
      await lab.close()
      await home.cleanup()
      await rm(certDir, { recursive: true, force: true })
    },
  }
}

/** Fails the test unless `mailkey add` exited 0. */
export function assertAdded(r: { code: number | null; stderr: string }): void {
  assert.equal(r.code, 0, r.stderr)
}
