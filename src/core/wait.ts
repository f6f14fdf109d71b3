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
