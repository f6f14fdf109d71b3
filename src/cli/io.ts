/**
 * The CLI's window on the world, passed to every command: stdout for results only (tokens,
 * --json), stderr for people. Tests can run commands in-process with their own CliIO.
 *
 * Owns: stream discipline and TTY facts. Must not: hold command logic.
 */
import type { Env } from '../config/paths.js'
import { scrub } from '../core/redact.js'

export interface CliIO {
  env: Env
  /** results: the token, JSON */
  stdout(text: string): void
  /** people: progress, warnings, errors (scrubbed as a last line of defence) */
  stderr(text: string): void
  stderrIsTTY: boolean
  stdinIsTTY: boolean
  /** one line from stdin (paste mode, passwords); undefined at end of input */
  readLine(prompt: string, signal?: AbortSignal): Promise<string | undefined>
  /** aborted on SIGINT */
  signal: AbortSignal
}

export function processIO(signal: AbortSignal): CliIO {
  return {
    env: process.env,
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(scrub(t)),
    stderrIsTTY: Boolean(process.stderr.isTTY),
    stdinIsTTY: Boolean(process.stdin.isTTY),
    readLine: async (prompt, sig) => {
      const { createInterface } = await import('node:readline')
      const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: Boolean(process.stdin.isTTY) })
      try {
        return await new Promise<string | undefined>((resolve) => {
          let done = false
          const finish = (v: string | undefined): void => {
            if (!done) {
              done = true
              resolve(v)
            }
          }
          rl.once('close', () => finish(undefined))
          sig?.addEventListener('abort', () => finish(undefined), { once: true })
          rl.question(prompt, (answer) => finish(answer))
        })
      } finally {
        rl.close()
      }
    },
    signal,
  }
}
