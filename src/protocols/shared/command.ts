/**
 * The codec step the line protocols share (POP3, SMTP; IMAP for its replies): a reply line framed
 * for the wire, and a command line split into its verb and argument before any state is consulted.
 *
 * Owns: reply framing and verb splitting. Must not: decide what a command means or keep state.
 */
import type { ClientAction } from './session.js'

/** A reply to the client: `line` and CRLF. */
export function reply(line: string): Extract<ClientAction, { type: 'reply' }> {
  return { type: 'reply', data: `${line}\r\n` }
}

export interface CommandLine {
  /** the keyword, upper-cased (RFC 5321 §2.4, RFC 1939 §3: keywords are case-insensitive) */
  verb: string
  /** everything after the single space that ends the keyword; undefined when there is no space */
  args: string | undefined
}

/** Split a command line at its first space: the verb, then the rest verbatim (a POP3 password keeps its spaces). */
export function splitCommand(text: string): CommandLine {
  const space = text.indexOf(' ')
  return {
    verb: (space < 0 ? text : text.slice(0, space)).toUpperCase(),
    args: space < 0 ? undefined : text.slice(space + 1),
  }
}
