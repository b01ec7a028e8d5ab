import { ConfidentialClientApplication } from '@azure/msal-node';
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
  MsalServiceClientCredentialsFactory,
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
  if (auth.openIdMetadataUrl || auth.tokenIssuer || auth.loginUrl) {
    // Setting any of these switches botbuilder to a fully parameterised cloud: every value must
    // then be given, so the public cloud's constants fill the ones not overridden.
    Object.assign(options, {
      ToChannelFromBotLoginUrl: auth.loginUrl ?? AuthenticationConstants.ToChannelFromBotLoginUrl,
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
  if (auth.loginUrl && auth.password)
    return new ConfigurationBotFrameworkAuthentication(
      options,
      privateLogin(auth.appId, auth.password, auth.loginUrl),
    );
  return new ConfigurationBotFrameworkAuthentication(options);
}

/**
 * The bot's tokens for the Bot Connector from a private cloud's authority (TEAMS_LOGIN_URL):
 * MSAL, as botbuilder uses it, with that authority's host declared known. Without that MSAL
 * asks login.microsoftonline.com whether the host is a real Entra ID instance, and refuses
 * it when the answer does not come. The token endpoint is read from the authority's OpenID
 * configuration (`{authority}/v2.0/.well-known/openid-configuration`), as MSAL does for any.
 */
function privateLogin(
  appId: string,
  password: string,
  loginUrl: string,
): MsalServiceClientCredentialsFactory {
  const client = new ConfidentialClientApplication({
    auth: {
      clientId: appId,
      clientSecret: password,
      authority: loginUrl,
      knownAuthorities: [new URL(loginUrl).host],
    },
  });
  // botframework-connector requires msal-node's CommonJS build; this module imports its ESM one:
  // the same class, declared twice. The factory only calls acquireTokenByClientCredential.
  type ClientApplication = ConstructorParameters<typeof MsalServiceClientCredentialsFactory>[1];
  return new MsalServiceClientCredentialsFactory(appId, client as unknown as ClientApplication);
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
