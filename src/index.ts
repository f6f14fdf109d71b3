/** mailkey's public API: re-exports only. */
export { createMailkey, type Mailkey, type MailkeyOptions } from './mailkey.js'
export type { AccessToken, BrokerOptions, GetTokenOptions } from './broker/broker.js'
export type { KeepAliveNote } from './broker/keep-alive.js'
export type { AccountStatus, RemoveResult } from './broker/accounts.js'
export type { DevicePrompt, ImportOptions, SignInCallbacks, SignInOptions } from './broker/sign-in.js'
export type { AccountOptions } from './providers/resolve.js'
export type { Flow, Provider, SaslMechanism } from './providers/types.js'
export { BUILTIN_PROVIDERS } from './providers/registry.js'
export { Secret } from './core/secret.js'
export {
  ERR,
  EXIT,
  ConfigError,
  InternalError,
  InterruptedError,
  MailkeyError,
  ProtocolError,
  ReauthRequiredError,
  StoreError,
  TransientError,
  UsageError,
  exitCodeOf,
  isMailkeyError,
  isTransient,
  type ErrorCode,
} from './errors.js'
