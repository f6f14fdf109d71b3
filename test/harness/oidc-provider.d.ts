// Minimal typings for the parts of oidc-provider 9 that the test harness uses
// (the package ships no types; @types/oidc-provider is deliberately not a dependency).
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http'

  export interface OidcClient {
    readonly clientId: string
    readonly clientAuthMethod: string
  }

  export interface OidcToken {
    readonly kind: string
    readonly clientId?: string
    readonly accountId?: string
    readonly grantId?: string
    readonly aud?: string | string[]
    readonly scope?: string
  }

  export interface InteractionPrompt {
    readonly name: string
    readonly reasons: string[]
    readonly details: {
      readonly missingOIDCScope?: string[]
      readonly missingOIDCClaims?: string[]
      readonly missingResourceScopes?: Record<string, string[]>
      readonly [key: string]: unknown
    }
  }

  export interface InteractionDetails {
    readonly uid: string
    readonly prompt: InteractionPrompt
    readonly params: Record<string, unknown>
    readonly session?: { readonly accountId?: string }
    readonly grantId?: string
  }

  export interface InteractionResult {
    login?: { accountId: string }
    consent?: { grantId?: string }
    error?: string
    error_description?: string
  }

  export interface OidcContext {
    readonly route?: string
  }

  export interface KoaLikeContext {
    status: number
    body: unknown
    readonly path: string
    readonly method: string
    readonly oidc?: OidcContext
  }

  export class Grant {
    constructor(properties: { accountId: string; clientId: string })
    addOIDCScope(scope: string): void
    addOIDCClaims(claims: string[]): void
    addResourceScope(resource: string, scope: string): void
    save(): Promise<string>
  }

  export interface TokenModel {
    find(value: string): Promise<OidcToken | undefined>
  }

  export class Provider {
    constructor(issuer: string, configuration?: Record<string, unknown>)
    readonly issuer: string
    readonly Grant: typeof Grant & { find(id: string): Promise<Grant | undefined> }
    readonly AccessToken: TokenModel
    readonly RefreshToken: TokenModel
    callback(): (req: IncomingMessage, res: ServerResponse) => void
    use(middleware: (ctx: KoaLikeContext, next: () => Promise<void>) => Promise<void>): void
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: InteractionResult,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>
  }

  export const errors: {
    readonly InvalidTarget: new (description?: string) => Error
  }

  export default Provider
}
