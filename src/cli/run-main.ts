/**
 * The full CLI run as a process: wires process streams and SIGINT to cli/main.ts and resolves with
 * the exit code. Shared by the installed entry (bin.ts) and the single-file executable (bin-exe.ts).
 *
 * Owns: the SIGINT wiring. Must not: exit the process (the caller sets the exit code).
 */
import { main } from './main.js'
import { processIO } from './io.js'

export function runMain(argv: string[]): Promise<number> {
  const ac = new AbortController()
  let interrupted = false
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130) // second ^C: leave now
    interrupted = true
    ac.abort(new DOMException('interrupted', 'AbortError'))
  })
  return main(argv, processIO(ac.signal))
}
