/** Small formatting helpers for human output. */

/** 872 -> "14:32", 4000 -> "1 h 06 min", 200000 -> "2.3 days" */
export function formatDuration(sec: number): string {
  const s = Math.max(0, Math.round(sec))
  if (s < 3600) return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`
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
