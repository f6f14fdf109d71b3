// The single-file executable (dist/exe/mailkey, ADR 0013) for tests: built once per content by
// scripts/build-exe.mjs (a no-op when dist/exe/mailkey.key matches), then run like a program
// installed on a machine without Node: its own PATH, nothing else.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { transcript, type CliResult } from './cli.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** `npm run build:exe` (cached by content): the executable's path */
export function buildExe(): string {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-exe.mjs'), '--quiet'], {
    encoding: 'utf8',
    cwd: ROOT,
  })
  if (r.status !== 0) throw new Error(`npm run build:exe failed (${r.status}):\n${r.stderr}`)
  return r.stdout.trim()
}

/**
 * A directory for PATH holding `mailkey` (a symlink to the executable, as a user would install
 * it) and symlinks to the other programs named; every program must be found by `command -v`.
 */
export async function exePath(exe: string, programs: string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mailkey-exe-path-'))
  await symlink(exe, join(dir, 'mailkey'))
  for (const p of programs) {
    const where = spawnSync('/bin/sh', ['-c', `command -v ${p}`], { encoding: 'utf8' }).stdout.trim()
    if (!where.startsWith('/')) throw new Error(`${p} is not installed`)
    await symlink(where, join(dir, p))
  }
  return dir
}

export interface LiveExe {
  /** resolves with the first JSON line on stdout whose `event` is name */
  event(name: string): Promise<Record<string, unknown>>
  done: Promise<CliResult>
}

/** Run the executable with exactly this environment; killed after timeoutMs. */
export function spawnExe(
  exe: string,
  args: string[],
  env: Record<string, string>,
  stdin = '',
  timeoutMs = 60_000,
): LiveExe {
  const child = spawn(exe, args, { env, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const waiters: { name: string; resolve: (e: Record<string, unknown>) => void }[] = []
  const scan = (): void => {
    for (const line of stdout.split('\n')) {
      let ev: Record<string, unknown>
      try {
        ev = JSON.parse(line) as Record<string, unknown>
      } catch {
        continue
      }
      for (const w of waiters.filter((x) => x.name === ev.event)) w.resolve(ev)
    }
  }
  child.stdout.setEncoding('utf8').on('data', (d: string) => ((stdout += d), scan()))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      transcript.push({ args, stdout, stderr })
      resolve({ code, signal, stdout, stderr })
    })
  })
  child.stdin.on('error', () => {})
  child.stdin.end(stdin)
  const event = (name: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      waiters.push({ name, resolve })
      scan()
      void done.then((r) => reject(new Error(`mailkey ${args[0]} ended without a "${name}" event: ${r.stderr}`)))
    })
  return { event, done }
}

export function runExe(exe: string, args: string[], env: Record<string, string>, stdin = ''): Promise<CliResult> {
  return spawnExe(exe, args, env, stdin).done
}
