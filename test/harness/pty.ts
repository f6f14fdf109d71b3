// A terminal program (aerc, neomutt) run in a pseudo-terminal, for tests: util-linux `script`
// gives it the terminal, our pipe types the keys, and the screen output is searched as text.
import { spawn, type ChildProcess } from 'node:child_process'
import { shCommand } from '../../src/recipes/shell.js'

export interface PtyRun {
  child: ChildProcess
  /** type keys (a carriage return is Enter) */
  type(keys: string): void
  /** the output so far, escape sequences removed */
  screen(): string
  /** resolves when the output matches, rejects after ms with the screen in the message */
  waitFor(pattern: RegExp, ms?: number): Promise<void>
  /** resolves with the exit code; kills the program when it has not ended after ms */
  end(ms?: number): Promise<number | null>
}

/** Remove ANSI/VT escape sequences (CSI, OSC, charset selection) so drawn text reads as text. */
export function plainText(raw: string): string {
  return raw
    .replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g, '') // OSC ... BEL/ST (titles, hyperlinks)
    .replace(/\x1b\[[0-9;?<>=]*[ -/]*[@-~]/g, ' ') // CSI: cursor moves become a blank
    .replace(/\x1b[()*+][0-9A-Za-z]/g, '') // charset selection
    .replace(/\x1b[=>78MDEHc]/g, '')
}

export function runInPty(argv: string[], env: Record<string, string>, size = { cols: 120, rows: 30 }): PtyRun {
  // script(1) makes the terminal; stty gives it a size, since our side of it is a pipe
  const child = spawn(
    'script',
    ['-qfec', `stty cols ${size.cols} rows ${size.rows}; exec ${shCommand(argv)}`, '/dev/null'],
    {
      env: { TERM: 'xterm-256color', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    },
  )
  let raw = ''
  const waiters = new Set<() => void>()
  const onData = (d: Buffer): void => {
    raw += d.toString('utf8')
    for (const w of waiters) w()
  }
  child.stdout?.on('data', onData)
  child.stderr?.on('data', onData)
  child.stdin?.on('error', () => {
    /* the program may end before it reads what we typed */
  })
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  const screen = (): string => plainText(raw)
  return {
    child,
    screen,
    type(keys) {
      child.stdin?.write(keys)
    },
    waitFor(pattern, ms = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!pattern.test(screen())) return
          cleanup()
          resolve()
        }
        const timer = setTimeout(() => {
          cleanup()
          reject(
            new Error(
              `no ${pattern} on the screen within ${ms} ms; it shows:\n${screen().replace(/ {2,}/g, ' ').slice(-3000)}`,
            ),
          )
        }, ms)
        const cleanup = (): void => {
          clearTimeout(timer)
          waiters.delete(check)
        }
        waiters.add(check)
        check()
      })
    },
    async end(ms = 5000) {
      const timer = setTimeout(() => {
        try {
          process.kill(-(child.pid as number), 'SIGKILL')
        } catch {
          /* gone */
        }
      }, ms)
      const code = await exited
      clearTimeout(timer)
      return code
    },
  }
}
