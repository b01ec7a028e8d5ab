import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** The scope botbuilder asks for: the Bot Connector (AuthenticationConstants.ToChannelFromBotOAuthScope). */
export const BOT_CONNECTOR_SCOPE = 'https://api.botframework.com/.default';

/** One token request the fake authority answered. */
export interface TokenRequest {
  tenant: string;
  form: Record<string, string>;
  status: number;
  /** The token issued (on success). */
  accessToken?: string;
  expiresIn?: number;
}

/**
 * A local stand-in for Entra ID (login.microsoftonline.com), the authority a bot's app id gets
 * its Bot Connector tokens from, over TLS as MSAL insists: `GET /{tenant}/v2.0/.well-known/
 * openid-configuration` and the client-credentials grant at `POST /{tenant}/oauth2/v2.0/token`
 * (form body; the client id and secret must match, and the scope be the Bot Connector's).
 * Each token is `tok-{n}`; `lifetimes` sets the `expires_in` of the next ones (then an hour).
 *
 * The certificate is self-signed, made at start with the `openssl` CLI; a hub process trusts it
 * through `NODE_EXTRA_CA_CERTS=caFile`, as a private cloud's CA would be trusted.
 */
export async function startMicrosoftLogin(client: { appId: string; password: string }) {
  const dir = mkdtempSync(path.join(tmpdir(), 'fake-login-'));
  const keyFile = path.join(dir, 'key.pem');
  const caFile = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      caFile,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  const requests: TokenRequest[] = [];
  const lifetimes: number[] = [];
  let serial = 0;
  let url = '';

  const server = createServer({ key: readFileSync(keyFile), cert: readFileSync(caFile) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const { pathname } = new URL(req.url ?? '/', url);
      const metadata = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(pathname);
      if (req.method === 'GET' && metadata) {
        const tenant = metadata[1]!;
        json(200, {
          issuer: `${url}/${tenant}/v2.0`,
          authorization_endpoint: `${url}/${tenant}/oauth2/v2.0/authorize`,
          token_endpoint: `${url}/${tenant}/oauth2/v2.0/token`,
          jwks_uri: `${url}/${tenant}/discovery/v2.0/keys`,
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          token_endpoint_auth_methods_supported: [
            'client_secret_post',
            'private_key_jwt',
            'client_secret_basic',
          ],
        });
        return;
      }
      const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(pathname);
      if (req.method === 'POST' && token) {
        const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
        const request: TokenRequest = { tenant: token[1]!, form, status: 0 };
        requests.push(request);
        if (form.grant_type !== 'client_credentials' || form.scope !== BOT_CONNECTOR_SCOPE) {
          request.status = 400;
          json(400, { error: 'invalid_request', error_description: 'AADSTS900144: bad grant or scope' });
          return;
        }
        if (form.client_id !== client.appId || form.client_secret !== client.password) {
          request.status = 401;
          json(401, {
            error: 'invalid_client',
            error_description: 'AADSTS7000215: Invalid client secret provided.',
          });
          return;
        }
        const expiresIn = lifetimes.shift() ?? 3600;
        request.status = 200;
        request.accessToken = `tok-${++serial}`;
        request.expiresIn = expiresIn;
        json(200, {
          token_type: 'Bearer',
          expires_in: expiresIn,
          ext_expires_in: expiresIn,
          access_token: request.accessToken,
        });
        return;
      }
      json(404, { error: 'not_found', error_description: `no route ${req.method} ${pathname}` });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  url = `https://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

  return {
    url,
    /** TEAMS_LOGIN_URL: the authority of the Bot Framework tenant. */
    authority: `${url}/botframework.com`,
    /** NODE_EXTRA_CA_CERTS for a process that talks to it. */
    caFile,
    requests,
    /** Tokens issued, in order. */
    issued: () => requests.filter((r) => r.status === 200).map((r) => r.accessToken!),
    /** The next tokens live `seconds` each (expires_in), in order. */
    nextLifetimes(...seconds: number[]) {
      lifetimes.push(...seconds);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}

export type MicrosoftLogin = Awaited<ReturnType<typeof startMicrosoftLogin>>;
