/** RFC 9110 §10.2.3: delay-seconds or an HTTP-date (OAuth servers, Microsoft Graph). */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined
  const v = value.trim()
  if (/^\d+$/.test(v)) return Number(v)
  // HTTP-date (RFC 9110 §5.6.7): all three formats start with a day name. Date.parse alone
  // accepts junk such as "junk 12" or "-5".
  if (!/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? /i.test(v)) return undefined
  const t = Date.parse(v)
  return Number.isNaN(t) ? undefined : Math.max(0, Math.round((t - now) / 1000))
}

/** A wait in words for messages: "45 s", "2 min", "3 h" (Retry-After values). */
export function waitText(sec: number): string {
  return sec < 120 ? `${sec} s` : sec < 7200 ? `${Math.ceil(sec / 60)} min` : `${Math.ceil(sec / 3600)} h`
}

/**
 * Waits `ms`, or less when `signal` aborts; leaves no listener on `signal` either way: a device
 * sign-in polls for minutes on one signal, and a listener left per poll trips Node's
 * MaxListenersExceededWarning after ~11 polls.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const t = setTimeout(done, ms)
    function done(): void {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}
