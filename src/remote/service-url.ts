/**
 * Is a store URL a token service's (https://, or http:// to loopback)? Kept apart from the client
 * so that deciding costs a process nothing: the HTTP modules load only when the service is asked.
 *
 * Owns: that test. Must not: import anything.
 */
export const isServiceUrl = (url: string | undefined): boolean => /^https?:\/\//i.test(url?.trim() ?? '')
