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
  /** like readLine, but a terminal does not echo what is typed */
  readSecretLine?(prompt: string, signal?: AbortSignal): Promise<string | undefined>
  /** all of stdin as bytes (`mailkey send`), or a UsageError past `limit` bytes */
  readAll?(limit: number): Promise<Buffer>
  /** aborted on SIGINT */
  signal: AbortSignal
  /** release stdin (the line reader) when the command is done */
  close?(): void
}

export function processIO(signal: AbortSignal): CliIO {
  // One line reader for the whole command: a pasted block may hold several lines in one chunk,
  // and a reader made per question would drop the lines after the first.
  let rl: import('node:readline').Interface | undefined
  const lines: string[] = []
  const waiters: ((line: string | undefined) => void)[] = []
  let ended = false
  const ensureReader = async (): Promise<void> => {
    if (rl || ended) return
    const { createInterface } = await import('node:readline')
    const tty = Boolean(process.stdin.isTTY)
    rl = createInterface({ input: process.stdin, ...(tty ? { output: process.stderr } : {}), terminal: tty })
    rl.on('line', (line) => {
      const w = waiters.shift()
      if (w) w(line)
      else lines.push(line)
    })
    rl.on('close', () => {
      ended = true
      for (const w of waiters.splice(0)) w(undefined)
    })
  }
  return {
    env: process.env,
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(scrub(t)),
    stderrIsTTY: Boolean(process.stderr.isTTY),
    stdinIsTTY: Boolean(process.stdin.isTTY),
    readLine: async (prompt, sig) => {
      if (prompt) process.stderr.write(prompt)
      await ensureReader()
      if (lines.length > 0) return lines.shift()
      if (ended || sig?.aborted) return undefined
      return new Promise<string | undefined>((resolve) => {
        // the abort listener goes once a line comes: a prompt asked again and again (a pasted
        // address that does not parse) must not pile listeners on one signal
        const onAbort = (): void => {
          const i = waiters.indexOf(w)
          if (i >= 0) waiters.splice(i, 1)
          resolve(undefined)
        }
        const w = (line: string | undefined): void => {
          sig?.removeEventListener('abort', onAbort)
          resolve(line)
        }
        waiters.push(w)
        sig?.addEventListener('abort', onAbort, { once: true })
      })
    },
    readSecretLine,
    readAll: (limit) => readAllStdin(limit),
    close: () => {
      rl?.close()
    },
    signal,
  }
}

/** A line typed on the terminal without echo (raw mode); undefined when stdin is no terminal, or on ^C / ^D. */
async function readSecretLine(prompt: string, sig?: AbortSignal): Promise<string | undefined> {
  if (!process.stdin.isTTY) return undefined
  const stdin = process.stdin
  // no echo before the prompt shows: someone who types (or pastes) at once must not see it echoed
  stdin.setRawMode(true)
  stdin.resume()
  process.stderr.write(prompt)
  try {
    return await new Promise<string | undefined>((resolve) => {
      let value = ''
      const done = (v: string | undefined): void => {
        stdin.removeListener('data', onKey)
        sig?.removeEventListener('abort', onAbort)
        process.stderr.write('\n')
        resolve(v)
      }
      const onKey = (d: Buffer): void => {
        for (const ch of d.toString('utf8')) {
          if (ch === '\r' || ch === '\n') return done(value)
          if (ch === '\u0003' || ch === '\u0004') return done(undefined) // ^C / ^D
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1)
          else value += ch
        }
      }
      stdin.on('data', onKey)
      const onAbort = (): void => done(undefined)
      sig?.addEventListener('abort', onAbort, { once: true })
    })
  } finally {
    stdin.setRawMode(false)
    stdin.pause()
  }
}

/**
 * How the CLI asks for the token store's passphrase: on a terminal only (stdin and stderr both
 * TTYs, so a mail client running "mailkey token" is never left waiting on a prompt it cannot show).
 */
export function passphrasePrompt(io: CliIO): { askPassphrase?: (prompt: string) => Promise<string | undefined> } {
  const read = io.readSecretLine
  if (!io.stdinIsTTY || !io.stderrIsTTY || !read) return {}
  return { askPassphrase: (prompt) => read(prompt, io.signal) }
}

/** stdin to its end, as bytes; more than `limit` is refused (a message on stdin must fit in memory). */
async function readAllStdin(limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    size += c.length
    if (size > limit) throw new Error(`more than ${limit} bytes on stdin`)
    chunks.push(c)
  }
  return Buffer.concat(chunks)
}
