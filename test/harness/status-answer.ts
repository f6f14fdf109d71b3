// An account's status as the token service answers it (GET /v1/accounts/{email}), for the unit tests
// that play the service to mailkey's client: the fields mailkey reads (broker/accounts.ts
// AccountStatus) and no more. Plain data: no secret, no socket, no clock.

/** the fields of a status that mailkey reads; a test adds the email, state, provider and the rest */
export const STATUS_FIELDS = {
  clientId: 'c',
  flow: 'device',
  sasl: 'XOAUTH2',
  grantedAt: '2026-01-01T00:00:00.000Z',
  scopes: [],
  servers: {},
  accessToken: { present: true, valid: true },
  refreshToken: { present: true },
}
