import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutboundBatch, SendOutcome } from '../../src/delivery/sender.ts';
import { SendError } from '../../src/delivery/sender.ts';
import type { EnvelopeInput } from '../../src/envelope.ts';
import type { ChannelAdapter } from '../../src/ports.ts';
import { switchboardCli } from '../helpers/cli.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until as poll } from '../helpers/until.ts';

/** A channel whose platform is a list in memory; `failNext` makes the next sends fail. */
function fakeChannel() {
  const sent: { session: string; seq: number; text: string }[] = [];
  let failures: { error: SendError; times: number } | undefined;
  let calls = 0;
  const adapter: ChannelAdapter = {
    channel: 'whatsapp',
    sender: {
      async send(batch: OutboundBatch): Promise<SendOutcome[]> {
        calls++;
        if (failures && failures.times > 0) {
          failures.times--;
          // The first reply went out before the platform refused the rest.
          const first = batch.replies[0]!;
          sent.push({ session: batch.session.id, seq: first.seq, text: first.text });
          throw new SendError(failures.error.message, {
            retryable: failures.error.retryable,
            retryAfterMs: failures.error.retryAfterMs,
            sent:
              batch.replies.length > 1 ? [{ seq: first.seq, channelMessageId: `wamid.${first.seq}` }] : [],
          });
        }
        const from = batch.replies.findIndex(
          (r) => !sent.some((s) => s.session === batch.session.id && s.seq === r.seq),
        );
        for (const r of batch.replies.slice(Math.max(from, 0)))
          sent.push({ session: batch.session.id, seq: r.seq, text: r.text });
        return batch.replies.map((r) => ({
          seq: r.seq,
          channelMessageId: `wamid.${batch.session.id}.${r.seq}`,
        }));
      },
    },
  };
  return {
    adapter,
    sent,
    calls: () => calls,
    failNext(error: SendError, times: number) {
      failures = { error, times };
    },
  };
}

const wa = (from: string, n: number, text: string): EnvelopeInput => ({
  id: `whatsapp:out.${from}.${n}`,
  channel: 'whatsapp',
  bot: 'default',
  from: { id: from },
  text,
  receivedAt: new Date().toISOString(),
});

/** Polls `check` until it holds (the shared helper, with this file's yes/no checks). */
const until = (check: () => Promise<boolean> | boolean, timeoutMs = 30_000) =>
  poll(check, Boolean, timeoutMs, 50);

/** A channel that allows 2 messages per recipient in any 600 ms, and notes when each send began. */
function pacedChannel() {
  const sendsAt: number[] = [];
  const adapter: ChannelAdapter = {
    channel: 'teams',
    sender: {
      recipientLimit: { count: 2, windowMs: 600 },
      async send(batch: OutboundBatch): Promise<SendOutcome[]> {
        sendsAt.push(Date.now());
        return batch.replies.map((r) => ({ seq: r.seq }));
      },
    },
  };
  return { adapter, sendsAt };
}

describe.each(['embedded', 'redis'] as const)('outbox, %s', (mode) => {
  const channel = fakeChannel();
  const paced = pacedChannel();
  const redis = testRedisPrefix();
  let running: RunningHub;
  const statuses = async (from: string) =>
    (
      await running.hub.db.query<{
        seq: number;
        delivery_status: string;
        delivery_attempts: number;
        channel_message_id: string | null;
      }>(
        `SELECT m.seq, m.delivery_status, m.delivery_attempts, m.channel_message_id FROM messages m JOIN sessions s ON s.id = m.session_id
         WHERE s.native_key = $1 AND m.role = 'assistant' ORDER BY m.seq`,
        [from],
      )
    ).rows;

  beforeAll(async () => {
    running = await startTestHub(
      {
        deliveryAttempts: 3,
        deliveryRetryBaseMs: 20,
        deliveryRetryCapMs: 200,
        ...(mode === 'redis' ? { redisUrl: TEST_REDIS_URL, redisPrefix: redis.prefix } : {}),
      },
      { adapters: [channel.adapter, paced.adapter] },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await redis.cleanup();
  });

  it('sends every reply once, each session in order, and records the platform id', async () => {
    const people = ['+10000000001', '+10000000002', '+10000000003'];
    for (let n = 0; n < 5; n++) for (const p of people) await running.hub.ingress.accept(wa(p, n, `m${n}`));
    await until(async () =>
      (await Promise.all(people.map(statuses))).every(
        (rows) => rows.length === 6 && rows.every((r) => r.delivery_status === 'sent'),
      ),
    );
    for (const p of people) {
      const rows = await statuses(p);
      const sessionId = (
        await running.hub.db.query<{ id: string }>('SELECT id FROM sessions WHERE native_key = $1', [p])
      ).rows[0]!.id;
      const mine = channel.sent.filter((s) => s.session === sessionId);
      expect(mine.map((s) => s.seq)).toEqual(rows.map((r) => r.seq));
      expect(mine.map((s) => s.text)).toEqual([
        "Hello! I'm the Switchboard demo bot. Say anything and I'll echo it back.",
        ...[0, 1, 2, 3, 4].map((n) => `You said: m${n} (message #${n + 1} in this session)`),
      ]);
      expect(
        rows.every(
          (r) => r.channel_message_id === `wamid.${sessionId}.${r.seq}` && r.delivery_attempts === 1,
        ),
      ).toBe(true);
    }
  });

  it('retries a retryable failure with backoff, resending only what did not go out', async () => {
    const from = '+10000000010';
    channel.failNext(new SendError('rate limited', { retryable: true, retryAfterMs: 30 }), 1);
    await running.hub.ingress.accept(wa(from, 1, 'hello'));
    // One read for both conditions: two reads could see the greeting alone sent, then both rows.
    await until(async () => {
      const now = await statuses(from);
      return now.length === 2 && now.every((r) => r.delivery_status === 'sent');
    });
    const rows = await statuses(from);
    const sessionId = (
      await running.hub.db.query<{ id: string }>('SELECT id FROM sessions WHERE native_key = $1', [from])
    ).rows[0]!.id;
    // The greeting went out before the failure; the echo after the retry. Each once.
    expect(channel.sent.filter((s) => s.session === sessionId).map((s) => s.seq)).toEqual(
      rows.map((r) => r.seq),
    );
    expect(rows.map((r) => r.delivery_attempts)).toEqual([1, 2]);
  });

  it('keeps replies that exhaust their attempts as failed, and sends them when an operator replays them', async () => {
    const from = '+10000000020';
    channel.failNext(new SendError('platform down', { retryable: true }), 10);
    await running.hub.ingress.accept(wa(from, 1, 'hello'));
    await until(async () => (await statuses(from)).some((r) => r.delivery_status === 'failed'));
    const failed = (await statuses(from)).filter((r) => r.delivery_status === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((r) => r.delivery_attempts === 3)).toBe(true);

    channel.failNext(new SendError('none', { retryable: true }), 0);
    const listing = await switchboardCli(running, ['outbox', 'failed', '--json']);
    expect(JSON.parse(listing).some((r: { error: string }) => r.error === 'platform down')).toBe(true);
    expect(await switchboardCli(running, ['outbox', 'replay'])).toMatch(
      /requeued the failed replies of \d+ session/,
    );
    await until(async () => (await statuses(from)).every((r) => r.delivery_status === 'sent'), 45_000);
  }, 60_000);

  it("keeps to the channel's per-recipient limit, one reply at a time", async () => {
    const from = '29:paced-recipient';
    for (let n = 0; n < 3; n++)
      await running.hub.ingress.accept({ ...wa(from, n, `m${n}`), id: `teams:paced.${n}`, channel: 'teams' });
    // Greeting + 3 echoes, 2 allowed in any 600 ms: every third send starts a window after the first.
    await until(() => paced.sendsAt.length >= 4);
    for (let i = 2; i < paced.sendsAt.length; i++) {
      // Allowance for the moment between the limiter's decision and the send starting.
      expect(paced.sendsAt[i]! - paced.sendsAt[i - 2]!).toBeGreaterThanOrEqual(500);
    }
  });

  it('fails at once on an error retrying cannot fix', async () => {
    const from = '+10000000030';
    const before = channel.calls();
    channel.failNext(new SendError('outside the 24-hour window', { retryable: false }), 1);
    await running.hub.ingress.accept(wa(from, 1, 'hello'));
    await until(async () => (await statuses(from)).some((r) => r.delivery_status === 'failed'));
    const rows = await statuses(from);
    expect(rows.filter((r) => r.delivery_status === 'failed').every((r) => r.delivery_attempts === 1)).toBe(
      true,
    );
    expect(channel.calls() - before).toBe(1);
  });
});
