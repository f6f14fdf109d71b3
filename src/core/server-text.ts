/**
 * Text that came from a server (an OAuth error_description, a device-flow instruction, a mail
 * server's reply), made safe to print and to store: C0 and C1 controls, DEL and the Unicode bidi
 * overrides removed (no escape sequences, window titles, screen clears or forged lines reach a
 * terminal), and every secret value the caller knows removed, whole or in pieces.
 *
 * It is applied once, where the text enters mailkey (src/oauth/http.ts for OAuth answers, the
 * loopback redirect's parameters, the line reader of `mailkey test`), never at each print.
 * Pattern scrubbing of things that merely look like credentials stays in redact.ts.
 *
 * Owns: cleaning server text. Must not: import anything from mailkey.
 */

// C0 (U+0000-U+001F), DEL (U+007F), C1 (U+0080-U+009F); bidi embeddings, overrides, isolates and
// marks (U+202A-U+202E, U+2066-U+2069, U+200E/U+200F, U+061C), which reorder what a terminal shows;
// invisible characters that would hide a secret from maskSecrets or a word from the reader (soft
// hyphen U+00AD, Mongolian vowel separator U+180E, zero-width U+200B-U+200D, word joiner and
// invisible operators U+2060-U+2064, BOM U+FEFF).
const CONTROLS =
  /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g
// line and paragraph separators (U+2028, U+2029) break lines like CR and LF
const SPACING = /[\t\n\v\f\r\u2028\u2029]+/g

/** Pieces shorter than this are not looked for (ordinary words); secrets shorter than 8 are ignored. */
export const MIN_SECRET_FRAGMENT = 16

export const REDACTED = '[redacted]'

/** Remove controls: line breaks and tabs become one space, everything else goes. */
export function stripControls(text: string): string {
  return text.replace(SPACING, ' ').replace(CONTROLS, '')
}

/**
 * Remove every known secret value from `text`: as a whole, URL-encoded, and every stretch of
 * MIN_SECRET_FRAGMENT or more characters that is a piece of one (a server that echoes a token
 * cut short, or glued to other text). Linear in the text: every piece of that length of every
 * secret goes into a set, and each position of the text is looked up once.
 */
export function maskSecrets(text: string, secrets: readonly string[]): string {
  const list = [...new Set(secrets.filter((s) => typeof s === 'string' && s.length >= 8))].sort(
    (a, b) => b.length - a.length,
  )
  if (list.length === 0) return text
  let out = text
  const forms = list.flatMap((s) => [s, encodeURIComponent(s), ...base64Forms(s)]).filter((f) => f.length >= 8)
  for (const form of [...new Set(forms)].sort((a, b) => b.length - a.length)) out = out.split(form).join(REDACTED)
  const n = MIN_SECRET_FRAGMENT
  const pieces = new Set<string>()
  for (const s of forms) for (let i = 0; i + n <= s.length; i++) pieces.add(s.slice(i, i + n))
  if (pieces.size === 0) return out
  const covered = new Uint8Array(out.length)
  let any = false
  for (let i = 0; i + n <= out.length; i++) {
    if (pieces.has(out.slice(i, i + n))) {
      covered.fill(1, i, i + n)
      any = true
    }
  }
  if (!any) return out
  let result = ''
  for (let i = 0; i < out.length; i++) {
    if (!covered[i]) result += out[i]
    else if (i === 0 || !covered[i - 1]) result += REDACTED
  }
  return result
}

/**
 * How a secret looks inside base64 (a server echoing `Basic base64(id:secret)`, an XOAUTH2
 * string, a token re-encoded): in each of the three alignments it can start at, the characters
 * that depend on the secret's bytes alone, in standard and URL-safe base64.
 */
export function base64Forms(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8')
  const out: string[] = []
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.concat([Buffer.alloc(k), bytes]).toString('base64')
    // the first group mixes in the k filler bytes; a last partial group depends on what follows
    const core = b64.slice(k ? 4 : 0, Math.floor((k + bytes.length) / 3) * 4)
    if (core.length >= MIN_SECRET_FRAGMENT) out.push(core, core.replace(/\+/g, '-').replace(/\//g, '_'))
  }
  return [...new Set(out)]
}

/** The first line of a multi-line text (an error_description with trace ids on later lines). */
export function firstLineOf(text: string): string {
  return text.split(/\r\n|\r|\n/, 1)[0] ?? ''
}

/** The one cleaning every server text gets before it is printed or stored. */
export function cleanServerText(text: string, secrets: readonly string[] = []): string {
  return maskSecrets(stripControls(text), secrets)
}
