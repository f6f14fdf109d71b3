/**
 * What a client recipe (`mailkey config <client> <account>`) is made from, and what it gives back.
 * Recipes are pure: settings in, the text of a configuration file out. The CLI reads the account
 * and the proxy listeners; the recipes never touch the disk.
 *
 * Owns: the recipe contract. Must not: do I/O or hold tokens.
 */
import type { SaslMechanism } from '../providers/types.js'

export interface MailServer {
  host: string
  port: number
  /** implicit: TLS from the first byte (imaps/pop3s/smtps); starttls: plain, then STARTTLS/STLS */
  tls: 'implicit' | 'starttls'
}

export interface RecipeInput {
  /** the account's address (its name in mailkey) */
  email: string
  /** the user name the server wants (a shared mailbox's address, or email) */
  user: string
  provider: string
  /** XOAUTH2 or OAUTHBEARER: what the server takes (Microsoft: XOAUTH2 only) */
  sasl: SaslMechanism
  imap?: MailServer
  pop?: MailServer
  smtp?: MailServer
  /** a PEM file to trust instead of the system's CAs (a private CA) */
  ca?: string
  /** a sh command line that prints a fresh access token (`mailkey token you@x`) */
  tokenCommand: string
  /** the client's version ("0.14.0"), for clients whose settings differ by version; unknown: the newest dialect */
  clientVersion?: string
  /**
   * the account submits mail through Microsoft Graph (issue 16): its SMTP goes to the proxy, which
   * relays to Graph, and Graph files every message in Sent Items
   */
  graph?: boolean
  /** set for `--via proxy`: where the local proxy listens and how the client gets the local password */
  proxy?: {
    host: string
    imapPort?: number
    popPort?: number
    smtpPort?: number
    /** a sh command line that prints the local proxy password */
    passwordCommand: string
  }
}

export interface Recipe {
  /** the configuration, complete, to redirect into the client's file */
  text: string
  /** where the file goes and how to use it (printed on stderr, never part of `text`) */
  usage: string[]
}

export interface ClientRecipe {
  /** the name given on the command line */
  name: string
  /** one line for the list of clients */
  summary: string
  /** false: the client cannot do OAuth itself here; only the proxy variant exists */
  direct: boolean
  /** why not, when direct is false */
  whyNotDirect?: string
  /** why this version of the client cannot do OAuth itself (undefined: it can) */
  notDirect?(clientVersion: string | undefined): string | undefined
  /** how to ask the installed client for its version, for recipes that differ by version */
  version?: { command: string; args: string[]; pattern: RegExp }
  make(input: RecipeInput): Recipe
}
