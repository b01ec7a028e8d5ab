import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { whatsAppCloudAdapter } from '../helpers/whatsapp-cloud.ts';

const ACCESS_TOKEN = 'EAAJB-body-limit-token';
const ADMIN_TOKEN = 'broadcast-body-limit-admin-token-0123456789';
const MB = 1024 * 1024;

/**
 * A broadcast's `to` list of 100,000 numbers is over MAX_BODY_BYTES (1 MiB): the broadcast route
 * has a limit of its own (BROADCAST_MAX_BODY_BYTES, 16 MiB); every other route keeps 1 MiB.
 */
describe('request body limits: the broadcast route takes 100,000 recipients, the others still 1 MiB', () => {
  let graph: GraphApi;
  let running: RunningHub;

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    running = await startTestHub(
      { configDir: path.join(REPO_ROOT, 'test/fixtures/config'), adminToken: ADMIN_TOKEN },
      {
        adapters: [
          whatsAppCloudAdapter({
            graphUrl: graph.url,
            numbers: '106540352242922:default',
            accessToken: ACCESS_TOKEN,
            appSecret: 'test-app-secret',
          }),
        ],
      },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await graph?.close();
  });

  const post = (route: string, body: string) =>
    fetch(`${running.url}${route}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body,
    });

  it('POST /api/admin/broadcasts with a list of 100,000 numbers (over 1 MiB) is accepted, every one recorded', async () => {
    expect(running.hub.config.maxBodyBytes).toBe(MB);
    const to = Array.from({ length: 100_000 }, (_, i) => `+1650${String(i).padStart(7, '0')}`);
    const body = JSON.stringify({
      bot: 'default',
      channel: 'whatsapp',
      to,
      template: { name: 'spring_sale', language: 'en_US' },
      // Slow on purpose: the test is about the request, not the sending.
      rate_per_second: 1,
    });
    expect(Buffer.byteLength(body)).toBeGreaterThan(1.4 * MB);
    const res = await post('/api/admin/broadcasts', body);
    expect(res.status).toBe(202);
    const answer = (await res.json()) as { broadcast_id: string; total: number };
    expect(answer.total).toBe(100_000);
    const { rows } = await running.hub.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM outbound_messages WHERE broadcast_id = $1',
      [answer.broadcast_id],
    );
    expect(rows[0]!.n).toBe(100_000);
  }, 120_000);

  it('another route still refuses 2 MiB with 413 payload_too_large', async () => {
    const body = JSON.stringify({
      bot: 'default',
      channel: 'whatsapp',
      to: '+16505550100',
      text: 'x'.repeat(2 * MB),
    });
    const res = await post('/api/admin/messages', body);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
  });

  it('the larger limit is for senders only: without the token a large body is refused 401', async () => {
    const res = await fetch(`${running.url}/api/admin/broadcasts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        bot: 'default',
        channel: 'whatsapp',
        to: ['+16505550100'],
        text: 'x'.repeat(8 * MB),
      }),
    });
    expect(res.status).toBe(401);
  });

  it('the broadcast route refuses a body over its own limit (BROADCAST_MAX_BODY_BYTES, 16 MiB)', async () => {
    expect(running.hub.config.broadcastMaxBodyBytes).toBe(16 * MB);
    const res = await post(
      '/api/admin/broadcasts',
      JSON.stringify({
        bot: 'default',
        channel: 'whatsapp',
        to: ['+16505550100'],
        text: 'x'.repeat(17 * MB),
      }),
    );
    expect(res.status).toBe(413);
  });
});
