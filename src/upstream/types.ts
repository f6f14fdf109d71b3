/**
 * Words shared by everything that logs in to a real mail server (upstream/, probe/, proxy/): the
 * three protocols by their server-URL names, and the kinds of failure a diagnosis gives.
 *
 * Owns: these two types. Must not: do anything.
 */

export type Protocol = 'imap' | 'pop' | 'smtp'

/** reauth: only a new sign-in helps; config: a setting is wrong; transient: try again; protocol: the server misbehaves */
export type FailureKind = 'reauth' | 'config' | 'transient' | 'protocol'
