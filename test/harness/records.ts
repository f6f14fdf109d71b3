// An account record as the store keeps it, for tests that write one directly instead of signing
// in: a custom provider, a device sign-in, a grant valid for an hour. What a test cares about
// (its tokens, its servers) it says; the rest is the usual.
import type { AccountRecord, AccountSettings } from '../../src/domain/account.js'

export interface RecordOptions {
  refreshToken?: string
  accessToken?: string
  /** settings over the usual ones (servers, endpoints, a client secret ...) */
  settings?: Partial<AccountSettings>
}

export function accountRecord(email: string, o: RecordOptions = {}): AccountRecord {
  return {
    v: 1,
    settings: {
      email,
      provider: 'custom',
      clientId: 'client',
      scopes: ['mail'],
      endpoints: { token: 'https://as.example/token' },
      servers: {},
      sasl: 'XOAUTH2',
      flow: 'device',
      ...o.settings,
    },
    grant: {
      refreshToken: o.refreshToken ?? 'rt-1',
      accessToken: o.accessToken ?? 'at',
      expiresAt: Date.now() + 3600_000,
      grantedAt: Date.now(),
    },
    state: 'active',
    updatedAt: Date.now(),
  }
}
