import { createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer } from 'node:http';

/** The issuer of the Bot Framework's channel tokens (botbuilder's AuthenticationConstants). */
export const BOT_FRAMEWORK_ISSUER = 'https://api.botframework.com';

/**
 * A local stand-in for login.botframework.com: the OpenID metadata document at
 * `/v1/.well-known/openidconfiguration` and its signing keys (JWKS, each key endorsed for the
 * channels it may sign for) at `/v1/.well-known/keys`, as the real service publishes them; and
 * `sign()`, which makes the RS256 token the channel would put in `Authorization: Bearer …`.
 */
export async function startBotFrameworkIssuer(options: { endorsements?: string[] } = {}) {
  const key = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'test-signing-key';
  let metadataRequests = 0;
  const jwk = key.publicKey.export({ format: 'jwk' });
  const server = createServer((req, res) => {
    const json = (body: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/v1/.well-known/openidconfiguration') {
      metadataRequests++;
      json({
        issuer: BOT_FRAMEWORK_ISSUER,
        authorization_endpoint: 'https://invalid.botframework.com',
        jwks_uri: `${url}/v1/.well-known/keys`,
        id_token_signing_alg_values_supported: ['RS256'],
        token_endpoint_auth_methods_supported: ['private_key_jwt'],
      });
      return;
    }
    if (req.url === '/v1/.well-known/keys') {
      json({
        keys: [
          {
            kty: 'RSA',
            use: 'sig',
            kid,
            n: jwk.n,
            e: jwk.e,
            endorsements: options.endorsements ?? ['msteams', 'emulator'],
          },
        ],
      });
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

  return {
    /** TEAMS_OPENID_METADATA_URL. */
    metadataUrl: `${url}/v1/.well-known/openidconfiguration`,
    get metadataRequests() {
      return metadataRequests;
    },
    /**
     * A channel token for `appId` and `serviceUrl`, valid for an hour. `claims` overrides any
     * claim; `signWith` signs with another key (one the metadata does not publish).
     */
    sign(
      appId: string,
      serviceUrl: string,
      claims: Record<string, unknown> = {},
      signWith: KeyObject = key.privateKey,
    ): string {
      const now = Math.floor(Date.now() / 1000);
      return signJwt(
        { alg: 'RS256', typ: 'JWT', kid },
        {
          serviceurl: serviceUrl,
          nbf: now - 60,
          exp: now + 3600,
          iss: BOT_FRAMEWORK_ISSUER,
          aud: appId,
          ...claims,
        },
        signWith,
      );
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type BotFrameworkIssuer = Awaited<ReturnType<typeof startBotFrameworkIssuer>>;

function signJwt(header: object, payload: object, privateKey: KeyObject): string {
  const encode = (part: object) => Buffer.from(JSON.stringify(part)).toString('base64url');
  const signed = `${encode(header)}.${encode(payload)}`;
  const signature = createSign('RSA-SHA256').update(signed).sign(privateKey).toString('base64url');
  return `${signed}.${signature}`;
}

/** A key the issuer does not publish: what a forger has. */
export function strangerKey(): KeyObject {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
}
