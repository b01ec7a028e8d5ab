import { type BotConnector, startBotConnector } from './bot-connector.ts';
import { type BotFrameworkIssuer, startBotFrameworkIssuer } from './bot-framework-issuer.ts';
import { Cluster } from './cluster.ts';
import { type MicrosoftLogin, startMicrosoftLogin } from './microsoft-login.ts';
import type { ServerProcess } from './server-process.ts';

/**
 * Teams with an app id across processes: a gateway and a worker with TEAMS_APP_ID and its secret,
 * whose Bot Connector tokens come from a local Microsoft login (TLS with a self-signed certificate,
 * trusted through NODE_EXTRA_CA_CERTS), whose inbound activities are signed by a local Bot
 * Framework issuer, and whose replies go to a local Bot Connector.
 */
export interface TeamsAppCluster {
  login: MicrosoftLogin;
  connector: BotConnector;
  issuer: BotFrameworkIssuer;
  cluster: Cluster;
  gateway: ServerProcess;
  /** Posts an activity to the gateway as the Bot Connector does: signed for the app, from the connector. */
  post(activity: unknown): Promise<Response>;
  stop(): Promise<void>;
}

export async function startTeamsAppCluster(options: {
  appId: string;
  password: string;
  /** More environment for both processes (TEAMS_BOT, CONFIG_DIR, LOG_LEVEL…). */
  env?: Record<string, string>;
  /** The lifetimes (seconds) of the next tokens the login issues, before any is asked for. */
  tokenLifetimes?: number[];
}): Promise<TeamsAppCluster> {
  const { appId, password } = options;
  const login = await startMicrosoftLogin({ appId, password });
  if (options.tokenLifetimes) login.nextLifetimes(...options.tokenLifetimes);
  const connector = await startBotConnector();
  const issuer = await startBotFrameworkIssuer();
  const cluster = new Cluster({
    TEAMS_APP_ID: appId,
    TEAMS_APP_PASSWORD: password,
    TEAMS_OPENID_METADATA_URL: issuer.metadataUrl,
    TEAMS_LOGIN_URL: login.authority,
    NODE_EXTRA_CA_CERTS: login.caFile,
    ...options.env,
  });
  const stop = async () => {
    await cluster.stop();
    await issuer.close();
    await connector.close();
    await login.close();
  };
  let gateway: ServerProcess;
  try {
    await cluster.init();
    gateway = await cluster.addGateway();
    await cluster.addWorker();
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  const post = (activity: unknown) =>
    fetch(`${gateway.url}/api/messages`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${issuer.sign(appId, connector.url)}`,
      },
      body: JSON.stringify(activity),
    });
  return { login, connector, issuer, cluster, gateway, post, stop };
}
