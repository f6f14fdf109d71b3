/**
 * Microsoft Entra (AADSTS) error codes that mail sign-in and token refresh run into, with a short
 * meaning, a kind the caller can branch on, and one sentence of advice for the user.
 *
 * Meanings follow Microsoft's published reference (learn.microsoft.com/entra/identity-platform/
 * reference-error-codes, source MicrosoftDocs/entra-docs docs/identity-platform/reference-error-codes.md).
 * Codes that page does not list say where they come from in `source`.
 *
 * Microsoft's own warning applies: the `error` field, not the code, is what a client should react
 * to; codes and texts change. This table is for explaining a failure, and `kind` is a hint.
 *
 * Owns: the table and code extraction. Must not: do I/O, name CLI commands in advice (the caller
 * adds those), or decide retry policy on its own.
 */

export const AADSTS_KINDS = ['reauth', 'client', 'config', 'transient', 'consent', 'blocked', 'pending'] as const

/**
 * reauth:    the grant or sign-in is no longer usable; the user signs in again.
 * client:    the OAuth client (app registration / client ID) is disabled, deleted or not allowed.
 * config:    the request does not fit the registration or tenant: redirect URI, tenant endpoint,
 *            scopes, secret or public-client setting, account type.
 * transient: a temporary condition; retry later, with backoff.
 * consent:   a user or an administrator has to grant the permissions.
 * blocked:   a policy or account state stops it; only an administrator can change that.
 * pending:   not a failure: a device-code sign-in is still waiting for the user.
 */
export type AadstsKind = (typeof AADSTS_KINDS)[number]

export interface AadstsEntry {
  readonly code: string
  /** Microsoft's symbolic name, where the reference gives one. */
  readonly name?: string
  /** Short, lower-case phrase that fits into "Microsoft refused the sign-in: <meaning>". */
  readonly meaning: string
  readonly kind: AadstsKind
  /** One sentence for the user. No command names: the caller adds those. */
  readonly advice: string
  /** Where the meaning comes from when it is not the Entra error-code reference. */
  readonly source?: string
}

export const AADSTS_TABLE: readonly AadstsEntry[] = [
  // --- App registration and request configuration -------------------------------------------
  {
    code: '50011',
    name: 'InvalidReplyTo',
    kind: 'config',
    meaning: 'the redirect URI does not match any reply address registered for the app',
    advice: 'Register this redirect URI on the app, or use a client ID whose registration lists it.',
  },
  {
    code: '500113',
    kind: 'config',
    meaning: 'no reply address is registered for the application',
    advice: 'Add a redirect URI for desktop and mobile apps to the app registration.',
    source:
      'error text "AADSTS500113: No reply address is registered for the application." seen in ' +
      'public reports; not in the Entra reference table',
  },
  {
    code: '7000218',
    kind: 'config',
    meaning: 'the request must carry a client secret or assertion (public client flows are off for the app)',
    advice: 'Turn on "Allow public client flows" in the app registration, or use a public client ID.',
  },
  {
    code: '700025',
    name: 'InvalidClientPublicClientWithCredential',
    kind: 'config',
    meaning: 'the app is a public client, so no client secret or assertion may be sent',
    advice: "Remove the client secret from this account's settings; public clients must not send one.",
  },
  {
    code: '7000215',
    kind: 'config',
    meaning: 'the client secret is invalid',
    advice: 'Check that the configured secret is the secret value, not its ID, and that it has not expired.',
  },
  {
    code: '700024',
    kind: 'config',
    meaning: 'the client assertion is not within its valid time range',
    advice: "Check this computer's clock and time zone, then try again.",
    source:
      'error text "AADSTS700024: Client assertion is not within its valid time range." seen in ' +
      'public reports; not in the Entra reference table',
  },
  {
    code: '50148',
    kind: 'reauth',
    meaning: 'the PKCE code verifier does not match the code challenge of the authorization request',
    advice: 'Start the sign-in again; if it keeps happening, report it as a bug.',
    source:
      'error text "AADSTS50148: The code_verifier does not match the code_challenge supplied in the ' +
      'authorization request for PKCE." seen in public reports; the current Entra table lists this as 501481',
  },
  {
    code: '501481',
    kind: 'reauth',
    meaning: 'the PKCE code verifier does not match the code challenge of the authorization request',
    advice: 'Start the sign-in again; if it keeps happening, report it as a bug.',
  },
  {
    code: '70011',
    name: 'InvalidScope',
    kind: 'config',
    meaning: 'a requested scope is not valid',
    advice: 'Check the scopes; personal accounts need outlook.office.com scopes, not outlook.office365.com.',
  },
  {
    code: '700022',
    name: 'InvalidMultipleResourcesScope',
    kind: 'config',
    meaning: 'the scopes name more than one resource',
    advice: 'Ask for mail scopes and Microsoft Graph scopes in separate sign-ins; a token has one resource.',
  },
  {
    code: '500011',
    name: 'InvalidResourceServicePrincipalNotFound',
    kind: 'config',
    meaning: 'the resource (such as Exchange Online) was not found in the tenant',
    advice: 'Check that the account has an Exchange Online mailbox and that the tenant setting is right.',
  },
  {
    code: '50194',
    kind: 'config',
    meaning: 'the app is not multi-tenant, so the /common endpoint cannot be used',
    advice: 'Set the tenant to your organization\'s tenant ID or domain instead of "common".',
  },
  {
    code: '9002332',
    kind: 'config',
    meaning: 'the app is for Microsoft Entra (work or school) accounts only and cannot use /consumers',
    advice: 'Use a work or school account, or a client ID registered for personal Microsoft accounts.',
  },
  {
    code: '9001023',
    kind: 'config',
    meaning: 'this grant type is not supported on the /common or /consumers endpoints',
    advice: 'Set the tenant to "organizations" or your organization\'s tenant ID.',
  },
  {
    code: '90124',
    name: 'V1ResourceV2GlobalEndpointNotSupported',
    kind: 'config',
    meaning: 'the resource is not supported on the /common or /consumers endpoints',
    advice: 'Set the tenant to "organizations" or your organization\'s tenant ID.',
  },
  {
    code: '90130',
    name: 'NonConvergedAppV2GlobalEndpointNotSupported',
    kind: 'config',
    meaning: 'the application is not supported on the /common or /consumers endpoints',
    advice: 'Set the tenant to "organizations" or your organization\'s tenant ID.',
  },
  {
    code: '90002',
    name: 'InvalidTenantName',
    kind: 'config',
    meaning: 'the tenant was not found',
    advice: "Check the tenant ID or domain in this account's settings.",
  },
  // --- Accounts and tenants ----------------------------------------------------------------------
  {
    code: '50020',
    name: 'UserUnauthorized',
    kind: 'config',
    meaning: 'the account is from an identity provider or tenant this app does not accept',
    advice: 'Sign in with an account of the configured tenant, or set the tenant to match the account.',
  },
  {
    code: '50034',
    name: 'UserAccountNotFound',
    kind: 'config',
    meaning: 'the account does not exist in this tenant',
    advice: 'Check the address for typos and that the tenant setting matches the account.',
  },
  {
    code: '500208',
    kind: 'config',
    meaning: 'the domain is not a valid sign-in domain for this account type',
    advice: 'Use the account type the app expects: work or school, or a personal Microsoft account.',
  },
  // --- The client ID itself ------------------------------------------------------------------------
  {
    code: '7000112',
    name: 'UnauthorizedClientApplicationDisabled',
    kind: 'client',
    meaning: 'the application is disabled',
    advice: 'This client ID no longer works; choose another client ID or register your own app.',
  },
  {
    code: '700016',
    name: 'UnauthorizedClient_DoesNotMatchRequest',
    kind: 'client',
    meaning: 'the application was not found in the directory',
    advice: 'Check the client ID and tenant; the app may have been deleted or registered in another tenant.',
  },
  {
    code: '700011',
    name: 'UnauthorizedClientAppNotFoundInOrgIdTenant',
    kind: 'client',
    meaning: 'the application was not found in the tenant',
    advice: 'Check the client ID and tenant; the app may have been deleted or registered in another tenant.',
  },
  {
    code: '65002',
    kind: 'client',
    meaning: 'a Microsoft first-party app is not pre-authorized for this resource',
    advice: 'This client ID belongs to Microsoft and cannot be used for mail; use another client ID.',
  },
  // --- Consent ---------------------------------------------------------------------------------------
  {
    code: '65001',
    name: 'DelegationDoesNotExist',
    kind: 'consent',
    meaning: 'the user or an administrator has not consented to the app',
    advice: 'Sign in interactively and accept the permissions, or ask an administrator to grant consent.',
  },
  {
    code: '65004',
    name: 'UserDeclinedConsent',
    kind: 'consent',
    meaning: 'the user declined to consent to the app',
    advice: 'Sign in again and accept the requested permissions.',
  },
  {
    code: '90094',
    name: 'AdminConsentRequired',
    kind: 'consent',
    meaning: 'administrator consent is required',
    advice: 'Ask a tenant administrator to grant consent for this app.',
  },
  {
    code: '90095',
    name: 'AdminConsentRequiredRequestAccess',
    kind: 'consent',
    meaning: 'administrator consent is required and must be requested',
    advice: 'Ask a tenant administrator to approve this app, then sign in again.',
  },
  // --- Policies and account state ----------------------------------------------------------------------
  {
    code: '53003',
    name: 'BlockedByConditionalAccess',
    kind: 'blocked',
    meaning: 'access was blocked by conditional access policies',
    advice: "Your organization's policy blocks this sign-in; try the browser sign-in or ask an admin.",
  },
  {
    code: '530033',
    kind: 'blocked',
    meaning: 'device code sign-in is blocked by a device-based conditional access policy',
    advice: 'Use the browser sign-in on a device your organization manages instead of a device code.',
    source:
      'error text "Remote device flow blocked due to device-based conditional access" seen in ' +
      'public reports (e.g. microsoft/azure-devops-intellij #584); not in the Entra reference table',
  },
  {
    code: '50105',
    name: 'EntitlementGrantsNotFound',
    kind: 'blocked',
    meaning: 'the user is not assigned to this app',
    advice: 'Ask an administrator to assign your account to this app.',
  },
  {
    code: '50057',
    name: 'UserDisabled',
    kind: 'blocked',
    meaning: 'the user account is disabled',
    advice: 'Ask an administrator to re-enable the account.',
  },
  {
    code: '50053',
    kind: 'blocked',
    meaning: 'the account is locked or the sign-in came from a blocked IP address',
    advice: 'Wait and try again later, or ask an administrator to unblock the account.',
  },
  // --- Sign in again -----------------------------------------------------------------------------------
  {
    code: '50076',
    name: 'UserStrongAuthClientAuthNRequired',
    kind: 'reauth',
    meaning: 'multifactor authentication is required',
    advice: 'Sign in again interactively and complete the multifactor prompt.',
  },
  {
    code: '50079',
    name: 'UserStrongAuthEnrollmentRequired',
    kind: 'reauth',
    meaning: 'the user must register for multifactor authentication',
    advice: 'Set up multifactor authentication for the account, then sign in again.',
  },
  {
    code: '700082',
    name: 'ExpiredOrRevokedGrantInactiveToken',
    kind: 'reauth',
    meaning: 'the refresh token expired after 90 days without use',
    advice: 'Sign in again; a refresh token lasts 90 days if it is not used.',
  },
  {
    code: '70008',
    name: 'ExpiredOrRevokedGrant',
    kind: 'reauth',
    meaning: 'the refresh token or authorization code has expired or was revoked',
    advice: 'Sign in again.',
  },
  {
    code: '70043',
    name: 'BadTokenDueToSignInFrequency',
    kind: 'reauth',
    meaning: "the refresh token expired because of the organization's sign-in frequency policy",
    advice: 'Sign in again; your organization requires it at a fixed interval.',
  },
  {
    code: '50173',
    name: 'FreshTokenNeeded',
    kind: 'reauth',
    meaning: 'the grant was revoked, for example after a password change or by an administrator',
    advice: 'Sign in again.',
  },
  {
    code: '70000',
    name: 'InvalidGrant',
    kind: 'reauth',
    meaning: 'the refresh token or grant is not valid',
    advice: 'Sign in again.',
  },
  {
    code: '50089',
    kind: 'reauth',
    meaning: 'the sign-in flow token expired',
    advice: 'Sign in again, and finish within a few minutes.',
  },
  {
    code: '50058',
    name: 'UserInformationNotProvided',
    kind: 'reauth',
    meaning: 'the user is not signed in and no session could be used silently',
    advice: 'Sign in again interactively.',
  },
  {
    code: '50126',
    name: 'InvalidUserNameOrPassword',
    kind: 'reauth',
    meaning: 'the user name or password is wrong',
    advice: 'Sign in again and check the user name and password.',
  },
  {
    code: '50055',
    name: 'InvalidPasswordExpiredPassword',
    kind: 'reauth',
    meaning: 'the password has expired',
    advice: 'Change the password, then sign in again.',
  },
  {
    code: '54005',
    kind: 'reauth',
    meaning: 'the authorization code was already redeemed',
    advice: 'Start the sign-in again; each code can be used only once.',
  },
  // --- Device code flow ------------------------------------------------------------------------------
  {
    code: '70016',
    name: 'AuthorizationPending',
    kind: 'pending',
    meaning: 'the device code sign-in is still waiting for the user',
    advice: 'Finish signing in at the verification page in a browser.',
  },
  {
    code: '70018',
    name: 'BadVerificationCode',
    kind: 'reauth',
    meaning: 'the device code or user code was not recognized',
    advice: 'Start the sign-in again and enter the new code exactly as shown.',
  },
  {
    code: '70019',
    name: 'CodeExpired',
    kind: 'reauth',
    meaning: 'the device code expired before the sign-in was finished',
    advice: 'Start the sign-in again and finish it before the code expires.',
  },
  {
    code: '90120',
    name: 'InvalidDeviceFlowRequest',
    kind: 'reauth',
    meaning: 'the device code request was already authorized or declined',
    advice: 'Start the sign-in again.',
  },
  {
    code: '50134',
    name: 'DeviceFlowAuthorizeWrongDatacenter',
    kind: 'reauth',
    meaning: 'the device code was approved in a different Microsoft datacenter',
    advice: 'Start the sign-in again and approve it from a browser in the same region as this computer.',
  },
  // --- Temporary -------------------------------------------------------------------------------------
  {
    code: '50196',
    name: 'LoopDetected',
    kind: 'transient',
    meaning: 'too many identical requests in a short time',
    advice: 'Wait a few minutes before trying again.',
  },
  {
    code: '50033',
    name: 'RetryableError',
    kind: 'transient',
    meaning: 'a temporary error in the sign-in service',
    advice: 'Try again in a moment.',
  },
  {
    code: '90024',
    name: 'RequestBudgetExceededError',
    kind: 'transient',
    meaning: 'a temporary error in the sign-in service',
    advice: 'Try again in a moment.',
  },
  {
    code: '90033',
    name: 'MsodsServiceUnavailable',
    kind: 'transient',
    meaning: 'the Microsoft directory service is unavailable',
    advice: 'Try again in a few minutes.',
  },
]

const BY_CODE: ReadonlyMap<string, AadstsEntry> = new Map(AADSTS_TABLE.map((e) => [e.code, e]))

// Microsoft writes "AADSTS700082: ..." at the start of error_description; codes are 5 to 7 digits
// today, allow up to 10 so a new one is not cut.
const IN_TEXT = /\bAADSTS(\d{1,10})(?!\d)/g

/** Longest error_description we scan; Microsoft's are a few hundred characters. */
const MAX_TEXT = 16_384
const MAX_CODES = 32

/**
 * AADSTS codes in a token-endpoint error: first from Microsoft's `error_codes` number array, then
 * from `error_description` text ("AADSTS700082: ..."). Each code once, as a digit string, in that
 * order. Anything that is not a positive integer (or a digit string) is ignored.
 */
export function aadstsCodesIn(text: string | undefined, errorCodes?: unknown): string[] {
  const out: string[] = []
  const add = (code: string): void => {
    if (out.length < MAX_CODES && !out.includes(code)) out.push(code)
  }
  if (Array.isArray(errorCodes)) {
    for (const c of errorCodes.slice(0, MAX_CODES)) {
      if (typeof c === 'number' && Number.isSafeInteger(c) && c > 0) add(String(c))
      else if (typeof c === 'string' && /^[1-9][0-9]{0,9}$/.test(c)) add(c)
    }
  }
  if (typeof text === 'string') {
    for (const m of text.slice(0, MAX_TEXT).matchAll(IN_TEXT)) {
      const digits = m[1]
      if (digits !== undefined) add(digits.replace(/^0+(?=\d)/, ''))
    }
  }
  return out
}

/** The table entry for a code ("700082" or "AADSTS700082"), or undefined if we do not know it. */
export function describeAadsts(code: string): AadstsEntry | undefined {
  if (typeof code !== 'string') return undefined
  const digits = code.trim().replace(/^AADSTS/i, '')
  return BY_CODE.get(digits)
}
