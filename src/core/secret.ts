/**
 * Secret: a value that must never reach a log, an error message or test output.
 *
 * toString/toJSON/util.inspect all print `[redacted:<fp>]`, where fp is the first 8 hex digits of
 * SHA-256 of the value, so two log lines can be correlated without showing anything. `reveal()`
 * is the only way out; it is called where the value goes on the wire or to the caller's stdout.
 *
 * Owns: the Secret type. Must not: import anything from mailkey.
 */
import { createHash } from 'node:crypto'

const inspectSymbol = Symbol.for('nodejs.util.inspect.custom')

export function fingerprint(value: string): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 8)
}

export class Secret {
  readonly #value: string

  constructor(value: string) {
    this.#value = value
  }

  reveal(): string {
    return this.#value
  }

  get fingerprint(): string {
    return fingerprint(this.#value)
  }

  equals(other: Secret | undefined): boolean {
    return other !== undefined && other.#value === this.#value
  }

  toString(): string {
    return `[redacted:${this.fingerprint}]`
  }

  toJSON(): string {
    return this.toString()
  }

  [inspectSymbol](): string {
    return this.toString()
  }
}

export function secretOrUndefined(value: string | undefined | null): Secret | undefined {
  return typeof value === 'string' && value.length > 0 ? new Secret(value) : undefined
}
