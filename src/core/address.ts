/**
 * E-mail addresses as mailkey takes them, and how they are shown. An account's address ends up in
 * file names, configuration files and suggested shell commands, so only real addresses are taken:
 * an RFC 5322 §3.4.1 addr-spec whose local part is a dot-atom or a quoted-string and whose domain
 * is a host name (RFC 5321 §4.1.2), UTF-8 allowed (RFC 6531/6532). Everything else a hostile
 * string could bring ("(", ";", "<", ">", spaces outside quotes, control characters) is refused
 * before it is stored. What remains may still hold shell characters (` $ ' | & are atext), so
 * every consumer quotes it (recipes/, shArg below).
 *
 * Owns: the address grammar; quoting an address for a message or a shell command.
 * Must not: import anything from mailkey, do I/O.
 */

// RFC 5322 §3.2.3 atext, plus RFC 6532 §3.2 UTF8-non-ascii (C1 controls and the Unicode line and
// paragraph separators excluded: they would break lines in the files an address goes into)
const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-\\u00a0-\\u2027\\u202a-\\u{10ffff}]"
// RFC 5322 §3.2.3 dot-atom-text: atoms joined by single dots, no dot first or last
const DOT_ATOM = new RegExp(`^${ATEXT}+(?:\\.${ATEXT}+)*$`, 'u')
// RFC 5322 §3.2.4 quoted-string without folding: qtext (%d33 / %d35-91 / %d93-126), a space, or
// a quoted-pair ("\" VCHAR / "\" SP); RFC 6532 §3.2 adds UTF8-non-ascii to qtext
const QUOTED = /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u00a0-\u2027\u202a-\u{10ffff}]|\\[\x20-\x7e])*"$/u
// RFC 5321 §4.1.2 Domain: sub-domains of letters, digits and inner hyphens (U-labels allowed)
const LABEL = /^[\p{L}\p{N}](?:[\p{L}\p{M}\p{N}-]{0,61}[\p{L}\p{M}\p{N}])?$/u

/** Why `s` is not an address mailkey takes, or undefined when it is one. */
export function addressProblem(s: string): string | undefined {
  const at = s.lastIndexOf('@')
  if (at < 0) return 'it has no "@"'
  const local = s.slice(0, at)
  const domain = s.slice(at + 1)
  if (local === '') return 'nothing comes before the "@"'
  if (domain === '') return 'nothing comes after the "@"'
  if (!DOT_ATOM.test(local) && !QUOTED.test(local)) {
    const bad = local.startsWith('"')
      ? undefined
      : [...local].find((c) => !new RegExp(`^${ATEXT}$`, 'u').test(c) && c !== '.')
    if (bad !== undefined)
      return `${describeChar(bad)} is not allowed before the "@" unless that part is in double quotes (RFC 5322 §3.4.1)`
    return 'the part before the "@" is neither dot-separated words nor one double-quoted string (RFC 5322 §3.4.1)'
  }
  // RFC 5321 §4.5.3.1.1: a local part is at most 64 octets
  if (Buffer.byteLength(local) > 64) return 'the part before the "@" is longer than 64 bytes (RFC 5321 §4.5.3.1.1)'
  if (domain.startsWith('[')) return 'an address literal ([...]) as the domain is not supported; give the host name'
  if (!domain.split('.').every((l) => LABEL.test(l)))
    return `${quoted(domain)} is not a host name (letters, digits and hyphens, separated by dots; RFC 5321 §4.1.2)`
  // RFC 5321 §4.5.3.1.2 and §4.5.3.1.3: a domain of at most 255 octets, a path of at most 256 (with "<" and ">")
  if (Buffer.byteLength(domain) > 255 || Buffer.byteLength(s) > 254)
    return 'it is longer than 254 bytes (RFC 5321 §4.5.3.1.3)'
  return undefined
}

/** True when `s` is an address mailkey takes (see addressProblem). */
export function isAddress(s: string): boolean {
  return addressProblem(s) === undefined
}

function describeChar(c: string): string {
  const cp = c.codePointAt(0) ?? 0
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp === 0x2028 || cp === 0x2029)
    return `a control character (U+${cp.toString(16).toUpperCase().padStart(4, '0')})`
  if (c === ' ') return 'a space'
  return `"${c}"`
}

/**
 * Any text (an address someone typed, a name from a file) as a double-quoted string that is safe
 * to print: JSON escapes, and C1 controls and line separators as \uXXXX, so it can neither move
 * the cursor nor forge a line.
 */
export function quoted(s: string): string {
  return JSON.stringify(s).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}

/** One POSIX sh word: bare when it is plainly safe, otherwise in single quotes (POSIX.1-2017 XCU §2.2.2). */
export function shArg(s: string): string {
  if (s !== '' && /^[A-Za-z0-9@%+=:,./_-]+$/.test(s)) return s
  return `'${s.replace(/'/g, `'\\''`)}'`
}
