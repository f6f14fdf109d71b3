/** Small formatting helpers for human output. */

/**
 * One style for every duration a person reads: 5 -> "5 s", 872 -> "14 min 32 s", 4000 ->
 * "1 h 06 min", 200000 -> "2.3 days" (never "14:32" beside "1 h 06 min").
 */
export function formatDuration(sec: number): string {
  const s = Math.max(0, Math.round(sec))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`
  return `${(s / 86_400).toFixed(1)} days`
}

export function formatTime(iso: string | undefined): string {
  if (!iso) return '-'
  return iso
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC')
    .replace(/Z$/, ' UTC')
}

/** The arrow between steps: "→" where the terminal's locale is UTF-8, "->" elsewhere (LANG=C). */
export function arrow(env: Readonly<Record<string, string | undefined>>): string {
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG || ''
  return /utf-?8/i.test(locale) ? '→' : '->'
}
