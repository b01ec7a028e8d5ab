import path from 'node:path';
import type { Activity } from 'botbuilder';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBotFrameworkAuthentication, verifyRequest } from '../../adapters/teams/auth.ts';
import { createTeamsAdapter, loadTeamsConfig } from '../../adapters/teams/index.ts';
import * as doc from '../fixtures/teams/activities.ts';
import {
  type BotFrameworkIssuer,
  startBotFrameworkIssuer,
  strangerKey,
} from '../helpers/bot-framework-issuer.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const APP_ID = '3a4b5c6d-1111-2222-3333-444455556666';
/** The connector these activities name; never called: this hub is a gateway, it sends nothing. */
const SERVICE_URL = 'https://smba.trafficmanager.net/amer/';

/**
 * With an app id, every request must carry a Bot Framework token that botbuilder accepts:
 * signed by a key in the channel's OpenID metadata (here a local issuer, through
 * TEAMS_OPENID_METADATA_URL), for this app (audience), by the Bot Framework (issuer), for this
 * activity's service URL, not expired. The hub is a gateway on Redis, so what was queued can
 * be counted and nothing is ever sent.
 */
describe('Teams authentication (gateway, Redis queue)', () => {
  let issuer: BotFrameworkIssuer;
  let running: RunningHub;
  let cleanupRedis: () => Promise<void>;
  let serial = 0;
  const fresh = (activity: doc.Json = doc.personalMessage) =>
    doc.variant(activity, { suffix: `a${++serial}`, serviceUrl: SERVICE_URL });
  const post = async (activity: unknown, authorization?: string) => {
    const res = await fetch(`${running.url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
      body: JSON.stringify(activity),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  };
  const depth = () => running.hub.queue.depth();

  beforeAll(async () => {
    issuer = await startBotFrameworkIssuer();
    const { prefix, cleanup } = testRedisPrefix();
    cleanupRedis = cleanup;
    const config = loadTeamsConfig(
      {
        TEAMS_APP_ID: APP_ID,
        TEAMS_APP_PASSWORD: 'test-client-secret',
        TEAMS_OPENID_METADATA_URL: issuer.metadataUrl,
      },
      '0.0.0.0',
    )!;
    running = await startTestHub(
      { configDir: FIXTURE_CONFIG, redisUrl: TEST_REDIS_URL, redisPrefix: prefix },
      { role: 'gateway', adapters: [createTeamsAdapter(config)] },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await issuer?.close();
    await cleanupRedis?.();
  });

  it('an unsigned request is refused with 401 and nothing is queued', async () => {
    const before = await depth();
    const res = await post(fresh());
    expect(res).toEqual({
      status: 401,
      json: { error: { code: 'unauthorized', message: 'a valid Bot Framework token is required' } },
    });
    expect(await post(fresh(), 'Bearer')).toMatchObject({ status: 401 });
    expect(await post(fresh(), 'Basic dXNlcjpwYXNz')).toMatchObject({ status: 401 });
    expect(await depth()).toBe(before);
  });

  it('a correctly signed request is accepted and queued; its retry is a duplicate', async () => {
    const before = await depth();
    const activity = fresh();
    const token = issuer.sign(APP_ID, SERVICE_URL);
    expect(await post(activity, `Bearer ${token}`)).toMatchObject({
      status: 200,
      json: { status: 'accepted', envelope_id: `teams:${activity.conversation.id}|${activity.id}` },
    });
    expect(await post(activity, `Bearer ${token}`)).toMatchObject({
      status: 200,
      json: { status: 'duplicate' },
    });
    expect(await depth()).toBe(before + 1);
    expect(issuer.metadataRequests).toBeGreaterThan(0);
  });

  it('refuses tokens that are forged, for another bot, another service, from another issuer, or expired', async () => {
    const before = await depth();
    const now = Math.floor(Date.now() / 1000);
    const bad = {
      forged: issuer.sign(APP_ID, SERVICE_URL, {}, strangerKey()),
      otherBot: issuer.sign('another-app-id', SERVICE_URL),
      otherService: issuer.sign(APP_ID, 'https://attacker.example/'),
      otherIssuer: issuer.sign(APP_ID, SERVICE_URL, { iss: 'https://sts.example.com/' }),
      expired: issuer.sign(APP_ID, SERVICE_URL, { nbf: now - 7200, exp: now - 3600 }),
      notAJwt: 'not.a.jwt',
    };
    for (const [what, token] of Object.entries(bad)) {
      const res = await post(fresh(), `Bearer ${token}`);
      expect({ what, status: res.status, code: res.json?.error?.code }).toEqual({
        what,
        status: 401,
        code: 'unauthorized',
      });
    }
    expect(await depth()).toBe(before);
  });

  it('an ignored activity type is still authenticated', async () => {
    const invoke = { ...fresh(doc.groupChatInvoke), channelId: 'msteams', serviceUrl: SERVICE_URL };
    expect(await post(invoke)).toMatchObject({ status: 401 });
    const token = issuer.sign(APP_ID, SERVICE_URL);
    expect(await post(invoke, `Bearer ${token}`)).toMatchObject({ status: 200 });
  });
});

describe('Teams authentication when the signing keys cannot be fetched', () => {
  it('answers 503 (the channel retries) rather than 401', async () => {
    const auth = createBotFrameworkAuthentication({
      appId: APP_ID,
      appType: 'MultiTenant',
      password: 'secret',
      tenantId: undefined,
      // A port nothing listens on.
      openIdMetadataUrl: 'http://127.0.0.1:9/v1/.well-known/openidconfiguration',
      tokenIssuer: undefined,
      loginUrl: undefined,
    });
    const issuer = await startBotFrameworkIssuer();
    try {
      const activity = doc.variant(doc.personalMessage, { suffix: 'keys', serviceUrl: SERVICE_URL });
      const outcome = await verifyRequest(
        auth,
        activity as Activity,
        `Bearer ${issuer.sign(APP_ID, SERVICE_URL)}`,
      );
      expect(outcome).toMatchObject({ ok: false, status: 503 });
    } finally {
      await issuer.close();
    }
  });
});
