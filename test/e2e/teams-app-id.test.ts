import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as doc from '../fixtures/teams/activities.ts';
import { BOT_CONNECTOR_SCOPE } from '../helpers/microsoft-login.ts';
import { startTeamsAppCluster, type TeamsAppCluster } from '../helpers/teams-app.ts';
import { until } from '../helpers/until.ts';

const APP_ID = '3a4b5c6d-1111-2222-3333-444455556666';
const PASSWORD = 'app-id-e2e-client-secret';
const GREETING = "Hello! I'm the Switchboard demo bot. Say anything and I'll echo it back.";

/**
 * Teams with an app id, sending: a gateway and a worker process with TEAMS_APP_ID and its
 * secret, whose Bot Connector tokens come from a local Entra ID (TLS with a self-signed
 * certificate, trusted through NODE_EXTRA_CA_CERTS; TEAMS_LOGIN_URL points at it). The worker
 * gets a token with the client-credentials grant (MSAL, as botbuilder uses it) and every call to
 * the local Bot Connector carries it. botbuilder renews a token 5 minutes before it expires, so
 * the first token, issued for 60 seconds, counts as expired at the next call: a new one is
 * fetched; the second, issued for an hour, is reused.
 */
describe('Teams with an app id: replies signed with a token from the Microsoft login', () => {
  let app: TeamsAppCluster;
  let serial = 0;

  const post = async (activity: doc.Json) => {
    const res = await app.post(activity);
    return { status: res.status, json: await res.json() };
  };
  const fresh = (text: string) =>
    doc.variant(doc.personalMessage, {
      suffix: `app-${++serial}-${Date.now()}`,
      serviceUrl: app.connector.url,
      text,
    });

  beforeAll(async () => {
    app = await startTeamsAppCluster({
      appId: APP_ID,
      password: PASSWORD,
      env: { LOG_LEVEL: 'debug' },
      tokenLifetimes: [60],
    });
  }, 120_000);
  afterAll(async () => {
    await app?.stop();
  });

  it('the reply carries the bearer token fetched from the login; an expired token is replaced, a valid one reused', async () => {
    const { login, connector, cluster, gateway } = app;
    const first = fresh('one');
    expect(await post(first)).toMatchObject({ status: 200, json: { status: 'accepted' } });
    const replies = await until(
      () => connector.delivered(first.conversation.id),
      (r) => r.length >= 2,
    );
    expect(replies.map((r) => r.body.text)).toEqual([GREETING, 'You said: one (message #1 in this session)']);

    // Every Bot Connector call so far (typing, replies) in order: the first carried the short-lived
    // token, each later one the token fetched when it had expired.
    const calls = connector.requests.map((r) => r.authorization);
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls[0]).toBe('Bearer tok-1');
    expect(calls.slice(1)).toEqual(calls.slice(1).map(() => 'Bearer tok-2'));
    expect(login.issued()).toEqual(['tok-1', 'tok-2']);
    for (const r of login.requests) {
      expect(r).toMatchObject({
        tenant: 'botframework.com',
        status: 200,
        form: { grant_type: 'client_credentials', client_id: APP_ID, scope: BOT_CONNECTOR_SCOPE },
      });
    }

    // A second conversation while tok-2 is valid: sent with it, no new token.
    const second = fresh('two');
    expect(await post(second)).toMatchObject({ status: 200, json: { status: 'accepted' } });
    const more = await until(
      () => connector.delivered(second.conversation.id),
      (r) => r.length >= 2,
    );
    expect(more.map((r) => r.authorization)).toEqual(['Bearer tok-2', 'Bearer tok-2']);
    expect(login.issued()).toEqual(['tok-1', 'tok-2']);

    // The secret and the tokens stay out of the logs.
    const output = cluster.workers.flatMap((w) => w.output).join('') + gateway.output.join('');
    expect(output).not.toContain(PASSWORD);
    expect(output).not.toContain('tok-1');
    expect(cluster.crashes()).toEqual([]);
  });
});
