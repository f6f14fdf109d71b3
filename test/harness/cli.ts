// Runs the built `mailkey` binary (dist/cli/bin.js) like a user or a mail client would.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync } from 'node:fs'
import { appendFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

/** the installed executable (package.json "bin"): the CommonJS fast path, then the full CLI */
export const BIN = fileURLToPath(new URL('../../dist/cli/mailkey.cjs', import.meta.url))

export function assertBuilt(): void {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run "npm run build" first (npm test does)`)
}

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Is a command on PATH? (for suites that need real clients: curl, msmtp, python3 ...) */
export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

/**
 * Run any program (a mail client, python3, curl) with stdin, killed after 30 s; its output goes
 * into the transcript (arguments holding a script or newlines are left out).
 */
export function runCommand(cmd: string, args: string[], env: Record<string, string>, stdin = ''): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const t = setTimeout(() => c.kill('SIGKILL'), 30_000)
    c.once('error', reject)
    c.once('close', (code, signal) => {
      clearTimeout(t)
      transcript.push({ args: [cmd, ...args.filter((a) => !a.includes('\n'))], stdout, stderr })
      resolve({ code, signal, stdout, stderr })
    })
    // a child that exits without reading its input (git, most commands given '') is not an
    // error: its exit code says how it went
    c.stdin.on('error', () => {})
    c.stdin.end(stdin)
  })
}

/** Every stdout/stderr a test saw, for the "no secret in any output" checks. */
export const transcript: { args: string[]; stdout: string; stderr: string }[] = []

export function runCli(
  args: string[],
  env: Record<string, string>,
  opts: { stdin?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  assertBuilt()
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`mailkey ${args[0]} did not finish within ${opts.timeoutMs ?? 30_000} ms; stderr: ${stderr}`))
    }, opts.timeoutMs ?? 30_000)
    child.once('error', reject)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      transcript.push({ args, stdout, stderr })
      resolve({ code, signal, stdout, stderr })
    })
    child.stdin.on('error', () => {}) // see runCommand
    if (opts.stdin !== undefined) child.stdin.end(opts.stdin)
    else child.stdin.end()
  })
}

export interface LiveCli {
  child: ChildProcessWithoutNullStreams
  /** resolves with the first JSON event on stdout whose `event` equals name */
  event(name: string, timeoutMs?: number): Promise<Record<string, unknown>>
  /** resolves when the process exits */
  done: Promise<CliResult>
  stderr(): string
  /** every JSON event seen so far with this name */
  events(name: string): Record<string, unknown>[]
}

/**
 * Spawn `mailkey` and watch its --json event stream while it runs. `wrap`: a command that execs
 * the rest, e.g. ['prlimit', '--nofile=200:200'] to run it under a low file-descriptor limit.
 */
export function spawnCli(args: string[], env: Record<string, string>, wrap: string[] = []): LiveCli {
  assertBuilt()
  const argv = [...wrap, process.execPath, BIN, ...args]
  const child = spawn(argv[0] as string, argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const events: Record<string, unknown>[] = []
  const waiters: { name: string; resolve: (e: Record<string, unknown>) => void }[] = []
  let buf = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d
    buf += d
    let nl
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      try {
        const ev = JSON.parse(line) as Record<string, unknown>
        events.push(ev)
        for (const w of waiters.filter((x) => x.name === ev.event)) w.resolve(ev)
      } catch {
        /* not an event line */
      }
    }
  })
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const done = new Promise<CliResult>((resolve) => {
    child.once('close', (code, signal) => {
      transcript.push({ args, stdout, stderr })
      resolve({ code, signal, stdout, stderr })
    })
  })
  return {
    child,
    done,
    stderr: () => stderr,
    events: (name) => events.filter((e) => e.event === name),
    event(name, timeoutMs = 20_000) {
      const seen = events.find((e) => e.event === name)
      if (seen) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`no "${name}" event within ${timeoutMs} ms; stderr: ${stderr}`)),
          timeoutMs,
        )
        waiters.push({
          name,
          resolve: (e) => {
            clearTimeout(t)
            resolve(e)
          },
        })
        void done.then(() => {
          clearTimeout(t)
          const late = events.find((e) => e.event === name)
          if (late) resolve(late)
          else reject(new Error(`mailkey exited before a "${name}" event; stderr: ${stderr}`))
        })
      })
    },
  }
}

/**
 * Secrets a test has seen (tokens read from a store, client secrets, device codes). When
 * MAILKEY_TEST_SECRETS_FILE is set (CI sets it), they are appended there so that
 * scripts/check-no-secrets.mjs can search the whole CI log for them afterwards.
 */
export async function noteSecrets(...values: (string | undefined)[]): Promise<void> {
  const file = process.env.MAILKEY_TEST_SECRETS_FILE
  const list = values.filter((v): v is string => typeof v === 'string' && v.length >= 8)
  if (!file || list.length === 0) return
  await appendFile(file, list.map((v) => Buffer.from(v).toString('base64') + '\n').join(''), { mode: 0o600 })
}

/** Which secrets appear in any text: raw, URL-encoded, or inside any base64 run (SASL blobs). */
export function findLeaks(texts: string[], secrets: string[]): string[] {
  const leaks: string[] = []
  const wanted = secrets.filter((v) => v.length >= 8)
  for (const t of texts) {
    const decoded = (t.match(/[A-Za-z0-9+/]{16,}={0,2}/g) ?? []).map((run) =>
      Buffer.from(run, 'base64').toString('latin1'),
    )
    for (const s of wanted) {
      if (t.includes(s) || t.includes(encodeURIComponent(s)) || decoded.some((d) => d.includes(s))) {
        leaks.push(`a secret starting "${s.slice(0, 3)}" appears in output`)
      }
    }
  }
  return leaks
}
