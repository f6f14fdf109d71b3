/** A wait in words for messages: "45 s", "2 min", "3 h" (Retry-After values). */
export function waitText(sec: number): string {
  return sec < 120 ? `${sec} s` : sec < 7200 ? `${Math.ceil(sec / 60)} min` : `${Math.ceil(sec / 3600)} h`
}
