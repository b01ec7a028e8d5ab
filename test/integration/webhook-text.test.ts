import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Json } from '../fixtures/whatsapp/cloud-payloads.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { type GraphApi, startGraphApi } from '../helpers/graph-api.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';
import { postWhatsAppWebhook, whatsAppCloudAdapter } from '../helpers/whatsapp-cloud.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const APP_SECRET = 'test-app-secret';
const ACCESS_TOKEN = 'EAAJB-test-token';

/**
 * A webhook cannot be answered "400, fix your text": the platform would offer the message again
 * and again. NUL and lone surrogates become U+FFFD at the ingress and the message goes on.
 */
describe('text no store keeps, arriving by webhook', () => {
  let graph: GraphApi;
  let running: RunningHub;

  beforeAll(async () => {
    graph = await startGraphApi(ACCESS_TOKEN);
    const adapter = whatsAppCloudAdapter({
      graphUrl: graph.url,
      numbers: '106540352242922:default',
      accessToken: ACCESS_TOKEN,
      appSecret: APP_SECRET,
    });
    running = await startTestHub({ configDir: FIXTURE_CONFIG }, { adapters: [adapter] });
  });
  afterAll(async () => {
    await running?.stop();
    await graph?.close();
  });

  const post = (payload: unknown) => postWhatsAppWebhook(running.url, payload, APP_SECRET);

  it('answers 200 and carries the text with NUL and lone surrogates replaced by U+FFFD', async () => {
    const from = '16505559001';
    const payload: Json = doc.variant(doc.textMessage, { from, suffix: from, timestamp: new Date() });
    const value = payload.entry[0].changes[0].value;
    // A NUL, a lone high surrogate and a lone low surrogate; the emoji's pair stays whole.
    value.messages[0].text.body = 'nul\u0000 high\uD83D low\uDE00 pair\uD83D\uDE00';
    value.contacts[0].profile.name = 'Sheena\u0000Nelson';
    const res = await post(payload);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', accepted: 1 });

    const cleaned = 'nul\uFFFD high\uFFFD low\uFFFD pair\uD83D\uDE00';
    const replies = await until(
      () => graph.to(from).map((r) => (r.body.type === 'text' ? r.body.text.body : '')),
      (t) => t.length >= 2,
    );
    expect(replies).toEqual(['welcome', `echo ${cleaned} #1`]);
    const { rows } = await running.hub.db.query<{ content: string; meta: Record<string, unknown> }>(
      `SELECT m.content, s.meta FROM messages m JOIN sessions s ON s.id = m.session_id
       WHERE m.envelope_id = $1`,
      [`whatsapp:${value.messages[0].id}`],
    );
    expect(rows).toEqual([
      { content: cleaned, meta: expect.objectContaining({ name: 'Sheena\uFFFDNelson' }) },
    ]);
  });
});
