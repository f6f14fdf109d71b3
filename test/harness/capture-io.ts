// A CliIO for running the CLI's main() in the test's own process: what it prints is kept in
// `out` and `err`; no TTY, no stdin, never aborted.
import type { CliIO } from '../../src/cli/io.js'

export function captureIO(env: CliIO['env']): CliIO & { out: string; err: string } {
  const io = {
    env,
    out: '',
    err: '',
    stderrIsTTY: false,
    stdinIsTTY: false,
    stdout(t: string) {
      io.out += t
    },
    stderr(t: string) {
      io.err += t
    },
    readLine: async () => undefined,
    signal: new AbortController().signal,
  }
  return io
}
