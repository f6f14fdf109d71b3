/**
 * Last-line scrubber for text that leaves the process (stderr, logs, error messages).
 *
 * Layer 3 of the redaction plan (STYLE.md §6): secrets are held in `Secret` and never formatted;
 * this catches what slips through. If it ever changes a string in a normal run, that is a bug in
 * the layer above, and the test suite checks that it does not fire.
 *
 * Owns: pattern-based scrubbing. Must not: import anything from mailkey.
 */

// Lower bounds keep ordinary words out ("a Bearer token", "XOAUTH2 response must be ..."): real
// access tokens are far longer than 16 characters, and the shortest possible SASL initial response
// (OAUTHBEARER "n,,^Aauth=Bearer t^A^A") is 28 base64 characters.
const PATTERNS: [RegExp, string][] = [
  [/\b(Bearer\s+)[A-Za-z0-9\-._~+/]{16,}=*/gi, '$1[redacted]'],
  [
    /\b((?:access|refresh|id)_token|device_code|client_secret|code_verifier)(["']?\s*[=:]\s*["']?)[^\s"'&,}]+/gi,
    '$1$2[redacted]',
  ],
  [/([?&](?:code|password)=)[^&\s"']+/g, '$1[redacted]'],
  [/\b((?:XOAUTH2|OAUTHBEARER)\s+)[A-Za-z0-9+/]{20,}={0,2}/g, '$1[redacted]'],
  [/\bauth=Bearer\s+[^\s\x01]+/gi, 'auth=Bearer [redacted]'],
]

/** Replace anything shaped like a credential. Returns the input unchanged when nothing matched. */
export function scrub(text: string): string {
  let out = text
  for (const [re, repl] of PATTERNS) out = out.replace(re, repl)
  return out
}

/** True when scrub() would change the text: used by tests to show the first layers held. */
export function wouldScrub(text: string): boolean {
  return scrub(text) !== text
}
