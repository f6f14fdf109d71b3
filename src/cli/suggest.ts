/**
 * "Did you mean": the nearest of the words mailkey knows to one it does not (a mistyped command,
 * subcommand or flag), by edit distance with transpositions (Damerau-Levenshtein, optimal string
 * alignment), close enough to be a typo rather than another word.
 *
 * Owns: the distance and the cut-off. Must not: know any command.
 */

/** edits (insert, delete, substitute, swap two neighbours) that turn a into b */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  )
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[]
      const up = d[i - 1] as number[]
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      row[j] = Math.min((up[j] as number) + 1, (row[j - 1] as number) + 1, (up[j - 1] as number) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        row[j] = Math.min(row[j] as number, ((d[i - 2] as number[])[j - 2] as number) + 1)
    }
  }
  return (d[a.length] as number[])[b.length] as number
}

/**
 * The known word nearest to `word`, when it is near enough to be a typo: one edit for words of up
 * to 4 letters, two up to 8, three beyond (a prefix of a longer word counts too: "prox" -> "proxy").
 */
export function closest(word: string, known: Iterable<string>): string | undefined {
  const w = word.toLowerCase()
  if (w.length === 0) return undefined
  const limit = w.length <= 4 ? 1 : w.length <= 8 ? 2 : 3
  let best: { word: string; d: number } | undefined
  for (const k of known) {
    const d = k.startsWith(w) && w.length >= 3 ? 1 : editDistance(w, k)
    if (d <= limit && (best === undefined || d < best.d)) best = { word: k, d }
  }
  return best?.word
}
