import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';
import { type GraphApi, type GraphRequest, graphError, startGraphApi } from '../helpers/graph-api.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until } from '../helpers/until.ts';
import { postWhatsAppWebhook, whatsAppCloudAdapter } from '../helpers/whatsapp-cloud.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const APP_SECRET = 'outage-app-secret';
const ACCESS_TOKEN = 'EAAJB-outage-token';
const NUMBER = '106540352242922';
/** The hub's default DELIVERY_ATTEMPTS: the outage below outlasts that many sends. */
const DELIVERY_ATTEMPTS = 8;
/** Sends the platform fails before it is back: more than DELIVERY_ATTEMPTS. */
const OUTAGE_SENDS = DELIVERY_ATTEMPTS + 5;

/**
 * A platform that is down (WhatsApp's Graph API answering 5xx, or not answering at all) for
 * longer than DELIVERY_ATTEMPTS sends: the replies wait and go out once it is back, whatever the
 * count of attempts, since only DELIVERY_GIVE_UP_AFTER gives a passing failure up (4 hours by
 * default). Until 2026-12-07 the eighth failure, ~45 s into an outage, failed them for good. The
 * backoff is shortened here (the count of failures is what matters, not their spacing); a
 * refusal still fails at once.
 */
describe.each(['embedded', 'redis'] as const)(
  'a platform outage longer than DELIVERY_ATTEMPTS sends, %s',
  (mode) => {
    let graph: GraphApi;
    let running: RunningHub;
    const redis = testRedisPrefix();
    const log = capturingLogger();
    let serial = 0;

    beforeAll(async () => {
      graph = await startGraphApi(ACCESS_TOKEN);
      const adapter = whatsAppCloudAdapter({
        graphUrl: graph.url,
        numbers: `${NUMBER}:default`,
        accessToken: ACCESS_TOKEN,
        appSecret: APP_SECRET,
      });
      running = await startTestHub(
        {
          configDir: FIXTURE_CONFIG,
          deliveryRetryBaseMs: 10,
          deliveryRetryCapMs: 100,
          // Retries wait on the scheduler: the embedded one looks for due jobs this often.
          schedulerPollMs: 20,
          ...(mode === 'redis' ? { redisUrl: TEST_REDIS_URL, redisPrefix: redis.prefix } : {}),
        },
        { adapters: [adapter], logger: log.logger },
      );
      expect(running.hub.config.deliveryAttempts).toBe(DELIVERY_ATTEMPTS);
    });
    afterAll(async () => {
      await running?.stop();
      await graph?.close();
      await redis.cleanup();
    });

    const person = () => `1650777${String(1000 + ++serial).padStart(4, '0')}`;
    const post = (from: string, n: number) =>
      postWhatsAppWebhook(
        running.url,
        doc.variant(doc.textMessage, { from, suffix: `${from}.${n}`, timestamp: new Date() }),
        APP_SECRET,
      );
    const texts = (waId: string) =>
      graph.to(waId).map((r) => (r.body.type === 'text' ? (r.body.text.body as string) : `[${r.body.type}]`));
    const replies = async (from: string) =>
      (
        await running.hub.db.query<{
          delivery_status: string;
          delivery_attempts: number;
          delivery_error: string;
        }>(
          `SELECT m.delivery_status, m.delivery_attempts, m.delivery_error FROM messages m
         JOIN sessions s ON s.id = m.session_id
         WHERE s.native_key = $1 AND m.role = 'assistant' ORDER BY m.seq`,
          [`+${from}`],
        )
      ).rows;

    it('keeps retrying past DELIVERY_ATTEMPTS while the platform is down, and delivers each reply once when it is back', async () => {
      const from = person();
      const toThem = (r: GraphRequest) => r.body.to === from && r.body.type === 'text';
      // Down: 5xx answers and connections closed unanswered, in turn.
      for (let i = 0; i < OUTAGE_SENDS; i++)
        graph.script(
          toThem,
          i % 2 === 0
            ? graphError(503, 2, 'Service temporarily unavailable')
            : { status: 0, body: null, drop: true },
        );
      await post(from, 1);
      await until(
        () => replies(from),
        (rows) => rows.length === 2 && rows.every((r) => r.delivery_status === 'sent'),
        60_000,
      );
      // Every failed send was of the first reply; then both went out, each once.
      expect(texts(from)).toEqual([
        ...Array(OUTAGE_SENDS + 1).fill('welcome'),
        'echo Does it come in another color? #1',
      ]);
      // Each failed attempt of the turn counts for both its replies (the second waited behind the first).
      expect((await replies(from)).map((r) => r.delivery_attempts)).toEqual([
        OUTAGE_SENDS + 1,
        OUTAGE_SENDS + 1,
      ]);
      expect(log.lines.filter((l) => l.event === 'delivery.failed')).toEqual([]);
      const retries = log.lines.filter((l) => l.event === 'delivery.retry' && l.channel === 'whatsapp');
      expect(retries.length).toBeGreaterThanOrEqual(OUTAGE_SENDS);
      expect(retries.every((l) => l.kind === 'transient')).toBe(true);
    }, 90_000);

    it('still fails a refusal at once, without retrying', async () => {
      const from = person();
      graph.script(
        (r) => r.body.to === from && r.body.type === 'text',
        graphError(400, 131026, '(#131026) Message Undeliverable'),
      );
      await post(from, 1);
      const rows = await until(
        () => replies(from),
        (r) => r.length === 2 && r.every((m) => m.delivery_status === 'failed'),
      );
      expect(rows.map((r) => r.delivery_attempts)).toEqual([1, 1]);
      expect(rows[0]!.delivery_error).toMatch(/131026/);
      expect(graph.to(from)).toHaveLength(1);
      const failed = log.lines.filter((l) => l.event === 'delivery.failed' && l.channel === 'whatsapp');
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ level: 50, reason: 'refused', attempts: 1, retryable: false });
    });
  },
);
