import {
  type Activity,
  CallerIdConstants,
  ConfigurationBotFrameworkAuthentication,
  type ConfigurationBotFrameworkAuthenticationOptions,
} from 'botbuilder';
import {
  type AuthenticateRequestResult,
  AuthenticationConstants,
  AuthenticationError,
} from 'botframework-connector';
import type { TeamsAuthConfig } from './config.ts';

/** jsonwebtoken's errors for a token that is malformed, badly signed, expired or not yet valid. */
const TOKEN_ERROR_NAMES = new Set(['JsonWebTokenError', 'TokenExpiredError', 'NotBeforeError']);

/**
 * botbuilder's authentication for this bot: channel tokens checked against the Bot Framework's
 * OpenID metadata (audience = the app id, issuer, endorsements, `serviceurl` claim), and
 * credentials for the Bot Connector by app type. Without an app id every request is accepted
 * and replies go out unsigned: local development and the Bot Framework Emulator only.
 */
export function createBotFrameworkAuthentication(
  auth: TeamsAuthConfig | undefined,
): ConfigurationBotFrameworkAuthentication {
  if (!auth) return new ConfigurationBotFrameworkAuthentication({});
  const options: ConfigurationBotFrameworkAuthenticationOptions = {
    MicrosoftAppId: auth.appId,
    MicrosoftAppType: auth.appType,
    ...(auth.password ? { MicrosoftAppPassword: auth.password } : {}),
    ...(auth.tenantId ? { MicrosoftAppTenantId: auth.tenantId } : {}),
  };
  if (auth.openIdMetadataUrl || auth.tokenIssuer) {
    // Setting any of these switches botbuilder to a fully parameterised cloud: every value must
    // then be given, so the public cloud's constants fill the ones not overridden.
    Object.assign(options, {
      ToChannelFromBotLoginUrl: AuthenticationConstants.ToChannelFromBotLoginUrl,
      ToChannelFromBotOAuthScope: AuthenticationConstants.ToChannelFromBotOAuthScope,
      ToBotFromChannelTokenIssuer: auth.tokenIssuer ?? AuthenticationConstants.ToBotFromChannelTokenIssuer,
      OAuthUrl: AuthenticationConstants.OAuthUrl,
      ToBotFromChannelOpenIdMetadataUrl:
        auth.openIdMetadataUrl ?? AuthenticationConstants.ToBotFromChannelOpenIdMetadataUrl,
      ToBotFromEmulatorOpenIdMetadataUrl: AuthenticationConstants.ToBotFromEmulatorOpenIdMetadataUrl,
      CallerId: CallerIdConstants.PublicAzureChannel,
      ValidateAuthority: true,
    });
  }
  return new ConfigurationBotFrameworkAuthentication(options);
}

export type VerifyOutcome =
  | { ok: true; result: AuthenticateRequestResult }
  | { ok: false; status: 401 | 503; reason: string };

/**
 * Checks the request's `Authorization` header for this activity. A missing, malformed, badly
 * signed, expired or misaddressed token is a 401; keys that cannot be fetched right now are a
 * 503 (the channel retries). Anything else is a bug and is thrown.
 */
export async function verifyRequest(
  auth: ConfigurationBotFrameworkAuthentication,
  activity: Activity,
  authorization: string,
): Promise<VerifyOutcome> {
  try {
    return { ok: true, result: await auth.authenticateRequest(activity, authorization) };
  } catch (err) {
    const error = err as Error & { statusCode?: unknown };
    if (err instanceof AuthenticationError) {
      return error.statusCode === 500
        ? { ok: false, status: 503, reason: error.message }
        : { ok: false, status: 401, reason: error.message };
    }
    if (TOKEN_ERROR_NAMES.has(error.name)) return { ok: false, status: 401, reason: error.message };
    if (error.name === 'FetchError') return { ok: false, status: 503, reason: error.message };
    throw err;
  }
}
