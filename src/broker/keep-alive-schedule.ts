/**
 * The keep-alive schedule of a long-running process (the proxy, the token service): one pass of
 * broker/keep-alive.ts every so often, what it did logged.
 *
 * Owns: the timer and the log lines. Must not: decide which grants need keeping alive.
 */
import type { KeepAliveNote, PassOptions } from './keep-alive.js'

export interface KeepAliver {
  keepAlive(o?: PassOptions): Promise<KeepAliveNote[]>
}

type Log = (e: Record<string, string | number | boolean | undefined>) => void

/**
 * Keep grants alive (issue 5): Microsoft drops a refresh token unused for 90 days; a proxy or a token
 * service that runs anyway has the broker refresh such grants well before (broker/keep-alive.ts), every
 * `everyMs` from start, and logs what each pass did. Returns the stop function.
 */
export function scheduleKeepAlive(tokens: KeepAliver, log: Log, everyMs: number): () => void {
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const pass = async (): Promise<void> => {
    // spaced and capped: a proxy over a shared store may carry hundreds of accounts
    for (const n of await tokens.keepAlive({ maxRefreshes: 100, gapMs: 1000 })) {
      const account = n.account
      if (n.refresh?.ok) log({ level: 'info', event: 'keepalive', account, outcome: 'ok' })
      else if (n.refresh) log({ level: 'warn', event: 'keepalive', account, outcome: 'failed', msg: n.refresh.message })
      if (n.ending) log({ level: 'warn', event: 'grant-ending', account, msg: n.ending })
      if (n.reauth) log({ level: 'warn', event: 'needs-sign-in', account, msg: n.reauth })
    }
  }
  const tick = (): void => {
    pass()
      .catch((e: unknown) => log({ level: 'error', event: 'keepalive-error', msg: (e as Error).message }))
      .finally(() => {
        if (stopped) return
        timer = setTimeout(tick, everyMs)
        timer.unref()
      })
  }
  if (everyMs > 0) {
    timer = setTimeout(tick, 0)
    timer.unref()
  }
  return () => {
    stopped = true
    clearTimeout(timer)
  }
}
