import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutboundBatch, SendOutcome } from '../../src/delivery/sender.ts';
import { SendError } from '../../src/delivery/sender.ts';
import type { EnvelopeInput } from '../../src/envelope.ts';
import type { ChannelAdapter } from '../../src/ports.ts';
import { switchboardCli } from '../helpers/cli.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { until as poll } from '../helpers/until.ts';

/**
 * A channel whose platform is a list in memory; `failNext` makes the next sends fail (those to
 * one session only, when `only` names its native key). A SendError reports the first reply as
 * gone out before the platform refused the rest; any other error, nothing.
 */
function fakeChannel() {
  const sent: { session: string; seq: number; text: string }[] = [];
  let failures: { error: Error; times: number; only?: string } | undefined;
  let calls = 0;
  const calledFor = new Map<string, number>();
  const adapter: ChannelAdapter = {
    channel: 'whatsapp',
    sender: {
      async send(batch: OutboundBatch): Promise<SendOutcome[]> {
        calls++;
        calledFor.set(batch.session.nativeKey, (calledFor.get(batch.session.nativeKey) ?? 0) + 1);
        const failing =
          failures && (failures.only === undefined || failures.only === batch.session.nativeKey);
        if (failures && failing && failures.times > 0) {
          failures.times--;
          if (!(failures.error instanceof SendError)) throw failures.error;
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
    callsFor: (nativeKey: string) => calledFor.get(nativeKey) ?? 0,
    failNext(error: Error, times: number, only?: string) {
      failures = { error, times, ...(only === undefined ? {} : { only }) };
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

/** This file's DELIVERY_GIVE_UP_AFTER: long enough for more than DELIVERY_ATTEMPTS (3) tries. */
const GIVE_UP_AFTER_MS = 3_000;

/** `switchboard_delivery_failures_total` for one channel and reason. */
async function deliveryFailures(running: RunningHub, channel: string, reason: string): Promise<number> {
  return (
    (await running.hub.metrics.deliveryFailures.get()).values.find(
      (v) => v.labels.channel === channel && v.labels.reason === reason,
    )?.value ?? 0
  );
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
        deliveryGiveUpAfterMs: GIVE_UP_AFTER_MS,
        deliveryRetryBaseMs: 20,
        deliveryRetryCapMs: 200,
        // Retries wait on the scheduler: the embedded one looks for due jobs this often.
        schedulerPollMs: 20,
        // One delivery at a time per worker (Redis lanes): a retry that waited in the worker held it.
        queueConcurrency: 1,
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

  it('retries a passing failure for as long as the budget lasts, past DELIVERY_ATTEMPTS, then keeps the reply as failed for an operator to replay', async () => {
    const from = '+10000000020';
    const given = await deliveryFailures(running, 'whatsapp', 'budget');
    channel.failNext(new SendError('platform down', { retryable: true }), 1_000, from);
    await running.hub.ingress.accept(wa(from, 1, 'hello'));
    await until(async () => (await statuses(from)).some((r) => r.delivery_status === 'failed'));
    const failed = (await statuses(from)).filter((r) => r.delivery_status === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    // Attempts went on past DELIVERY_ATTEMPTS (3): only the time waited gave the reply up.
    expect(failed.every((r) => r.delivery_attempts > 3)).toBe(true);
    const { rows: waited } = await running.hub.db.query<{ ms: number }>(
      `SELECT extract(epoch FROM m.updated_at - m.created_at) * 1000 AS ms FROM messages m
       JOIN sessions s ON s.id = m.session_id WHERE s.native_key = $1 AND m.delivery_status = 'failed'`,
      [from],
    );
    expect(waited.every((r) => Number(r.ms) >= GIVE_UP_AFTER_MS)).toBe(true);
    expect(await deliveryFailures(running, 'whatsapp', 'budget')).toBe(given + 1);

    channel.failNext(new SendError('none', { retryable: true }), 0);
    const listing = await switchboardCli(running, ['outbox', 'failed', '--json']);
    expect(JSON.parse(listing).some((r: { error: string }) => r.error === 'platform down')).toBe(true);
    expect(await switchboardCli(running, ['outbox', 'replay'])).toMatch(
      /requeued the failed replies of \d+ session/,
    );
    await until(async () => (await statuses(from)).every((r) => r.delivery_status === 'sent'), 45_000);
  }, 60_000);

  it('gives up an error no channel classified after DELIVERY_ATTEMPTS', async () => {
    const from = '+10000000025';
    const given = await deliveryFailures(running, 'whatsapp', 'attempts');
    channel.failNext(new TypeError("Cannot read properties of undefined (reading 'id')"), 1_000, from);
    await running.hub.ingress.accept(wa(from, 1, 'hello'));
    await until(async () => {
      const rows = await statuses(from);
      return rows.length === 2 && rows.every((r) => r.delivery_status === 'failed');
    });
    expect((await statuses(from)).map((r) => r.delivery_attempts)).toEqual([3, 3]);
    expect(channel.callsFor(from)).toBe(3);
    expect(await deliveryFailures(running, 'whatsapp', 'attempts')).toBe(given + 1);
    channel.failNext(new SendError('none', { retryable: true }), 0);
  });

  it("a reply waiting for its retry holds no worker: other sessions' replies go out meanwhile, its own later replies wait behind it", async () => {
    const waiting = '+10000000040';
    const other = '+10000000041';
    // Longer than the other session's turn and delivery take: they happen while this one waits.
    channel.failNext(new SendError('slow down', { retryable: true, retryAfterMs: 8_000 }), 1, waiting);
    await running.hub.ingress.accept(wa(waiting, 1, 'first'));
    await until(async () =>
      (await statuses(waiting)).some((r) => r.delivery_attempts === 1 && r.delivery_status === 'queued'),
    );
    await running.hub.ingress.accept(wa(waiting, 2, 'second'));
    await running.hub.ingress.accept(wa(other, 1, 'hello'));
    await until(async () => {
      const rows = await statuses(other);
      return rows.length === 2 && rows.every((r) => r.delivery_status === 'sent');
    });
    // The waiting session's retry is not due yet: its first turn's echo, and its second turn
    // behind it, are still queued.
    const meanwhile = await statuses(waiting);
    expect(meanwhile.map((r) => r.delivery_status)).toEqual(['sent', 'queued', 'queued']);
    expect(channel.callsFor(waiting)).toBe(1);

    await until(async () => (await statuses(waiting)).every((r) => r.delivery_status === 'sent'), 30_000);
    const rows = await statuses(waiting);
    const sessionId = (
      await running.hub.db.query<{ id: string }>('SELECT id FROM sessions WHERE native_key = $1', [waiting])
    ).rows[0]!.id;
    // In order, each once: the second turn went out after the first one's retry.
    expect(channel.sent.filter((s) => s.session === sessionId).map((s) => s.seq)).toEqual(
      rows.map((r) => r.seq),
    );
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
