import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EXPIRED_LEASE_GRACE_MS, KEEP_DELIVERED_MS, laneJobId } from '../../src/webhooks/dispatcher.ts';
import { pruneDelivered, pruneExpiredLeases } from '../../src/webhooks/store.ts';
import { agentWithStatus } from '../helpers/agents.ts';
import { switchboardCli } from '../helpers/cli.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';
import {
  type ReceivedEvent,
  replayDeadEvent,
  startWithReceiver,
  WebhookReceiver,
  webhookConfigDir,
} from '../helpers/webhook-receiver.ts';

/** What the outbox holds for a session, in order: the order every receiver must see. */
async function outboxOrder(running: RunningHub, sessionId: string): Promise<string[]> {
  const { rows } = await running.hub.db.query<{ event_id: string }>(
    'SELECT event_id FROM webhook_outbox WHERE session_id = $1 ORDER BY id',
    [sessionId],
  );
  return rows.map((r) => r.event_id);
}

const ids = (events: ReceivedEvent[] | undefined) => (events ?? []).map((e) => e.id);

describe('event webhooks', () => {
  const receiver = new WebhookReceiver();
  let running: RunningHub;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    running = await startWithReceiver(receiver, async (url) =>
      startTestHub({
        configDir: await webhookConfigDir(url),
        webhookPollMs: 50,
        webhookRetryBaseMs: 200,
        schedulerPollMs: 50,
      }),
    );
    api = apiClient(running.url);
  });
  afterAll(() => running?.stop());
  afterEach(() => {
    receiver.mode = 'up';
  });

  it('sends signed events with the documented body, in order', async () => {
    const session = await api.createSession('hooks');
    const reply = await api.chat(session.token, 'hello there');
    expect(reply.status).toBe(200);
    const events = await until(
      () => receiver.bySession().get(session.session_id) ?? [],
      (e) => e.filter((x) => x.type === 'message.sent').length >= 2,
    );
    expect(receiver.badSignatures).toBe(0);
    expect(receiver.badShapes).toEqual([]);
    const types = events.map((e) => e.type);
    expect(types.slice(0, 2)).toEqual(['session.started', 'message.sent']);
    expect(types).toContain('message.received');
    const received = events.find((e) => e.type === 'message.received');
    expect(received).toMatchObject({
      bot: 'hooks',
      session_id: session.session_id,
      data: { text: 'hello there' },
    });
    expect(received?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number.isNaN(Date.parse(received?.created_at ?? ''))).toBe(false);
    expect(types.indexOf('message.received')).toBeLessThan(types.lastIndexOf('message.sent'));
    expect(ids(events)).toEqual((await outboxOrder(running, session.session_id)).slice(0, events.length));
  });

  it('forgets delivered events after a day', async () => {
    const db = running.hub.db;
    const { rows } = await db.query<{ id: string }>(
      `UPDATE webhook_outbox SET done_at = now() - interval '2 days'
       WHERE id = (SELECT min(id) FROM webhook_outbox WHERE state = 'delivered') RETURNING id`,
    );
    expect(rows).toHaveLength(1);
    expect(await pruneDelivered(db, KEEP_DELIVERED_MS)).toBe(1);
    const left = await db.query('SELECT 1 FROM webhook_outbox WHERE id = $1', [rows[0]?.id]);
    expect(left.rows).toHaveLength(0);
  });

  it('forgets lane leases an hour after they ran out (a stopped owner leaves its lease), and no other', async () => {
    const db = running.hub.db;
    const { rows: endpoints } = await db.query<{ endpoint: string }>(
      'SELECT endpoint FROM webhook_endpoints LIMIT 1',
    );
    const endpoint = endpoints[0]!.endpoint;
    await db.query(
      `INSERT INTO webhook_lanes (endpoint, lane, owner, leased_until) VALUES
         ($1, 'lease-test:stale', 'gone', now() - interval '2 hours'),
         ($1, 'lease-test:recent', 'gone', now() - interval '5 minutes'),
         ($1, 'lease-test:held', 'alive', now() + interval '1 minute')`,
      [endpoint],
    );
    expect(await pruneExpiredLeases(db, EXPIRED_LEASE_GRACE_MS)).toBe(1);
    const { rows } = await db.query<{ lane: string }>(
      "SELECT lane FROM webhook_lanes WHERE lane LIKE 'lease-test:%' ORDER BY lane",
    );
    expect(rows.map((r) => r.lane)).toEqual(['lease-test:held', 'lease-test:recent']);
    await db.query("DELETE FROM webhook_lanes WHERE lane LIKE 'lease-test:%'");
  });

  it('retries 500s until the receiver takes them', async () => {
    receiver.mode = 'fail';
    const before = receiver.requests;
    const session = await api.createSession('hooks');
    await api.chat(session.token, 'first');
    // Several failed tries of the lane's head, and nothing after it sent meanwhile.
    await until(
      () => receiver.requests,
      (n) => n >= before + 3,
    );
    expect(receiver.bySession().get(session.session_id)).toBeUndefined();
    receiver.mode = 'up';
    const expected = await outboxOrder(running, session.session_id);
    const got = await until(
      () => ids(receiver.bySession().get(session.session_id)),
      (e) => e.length >= expected.length,
    );
    expect(got).toEqual(expected);
    const { rows } = await running.hub.db.query<{ attempts: number }>(
      'SELECT attempts FROM webhook_outbox WHERE session_id = $1 ORDER BY id LIMIT 1',
      [session.session_id],
    );
    expect(rows[0]?.attempts).toBeGreaterThanOrEqual(3);
  });

  it('a receiver down for a while gets every event once it is back, in order per session, and turns never wait', async () => {
    await receiver.stopListening();
    const sessions = await Promise.all([1, 2, 3].map(() => api.createSession('hooks')));
    for (let i = 0; i < 3; i++)
      for (const s of sessions) {
        const started = Date.now();
        const reply = await api.chat(s.token, `message ${i}`);
        expect(reply.status).toBe(200);
        // A refused connection costs the turn nothing (the loop, not the lane, sends).
        expect(Date.now() - started).toBeLessThan(5_000);
      }
    // Every session's head has failed at least once: the scheduler holds the retries.
    await until(
      async () =>
        (
          await running.hub.db.query<{ n: number }>(
            `SELECT count(DISTINCT session_id)::int AS n FROM webhook_outbox
             WHERE session_id = ANY ($1::uuid[]) AND attempts > 0 AND state = 'pending'`,
            [sessions.map((s) => s.session_id)],
          )
        ).rows[0]?.n,
      (n) => n === 3,
    );
    await receiver.listenAgain();
    for (const s of sessions) {
      const expected = await outboxOrder(running, s.session_id);
      expect(expected.length).toBeGreaterThanOrEqual(7); // started, greeting, 3 × (received, sent)
      const got = await until(
        () => ids(receiver.bySession().get(s.session_id)),
        (e) => e.length >= expected.length,
      );
      expect(got).toEqual(expected);
    }
  });
});

describe('event webhooks: dead letters', () => {
  const receiver = new WebhookReceiver();
  let running: RunningHub;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    running = await startWithReceiver(receiver, async (url) =>
      startTestHub({
        configDir: await webhookConfigDir(url),
        webhookPollMs: 50,
        webhookRetryBaseMs: 100,
        webhookMaxAgeMs: 1_500,
        schedulerPollMs: 50,
      }),
    );
    api = apiClient(running.url);
  });
  afterAll(() => running?.stop());

  it('an event refused past its age is dead-lettered, later ones go on, and replay sends it', async () => {
    const session = await api.createSession('hooks');
    const [first] = await until(
      () => outboxOrder(running, session.session_id),
      (e) => e.length >= 1,
    );
    receiver.refuse.add(first as string);
    await api.chat(session.token, 'after the gap');
    const expected = await outboxOrder(running, session.session_id);
    const got = await until(
      () => ids(receiver.bySession().get(session.session_id)),
      (e) => e.length >= expected.length - 1,
    );
    expect(got).toEqual(expected.slice(1));
    const dead = JSON.parse(await switchboardCli(running, ['webhooks', 'failed', '--json'])) as {
      event: string;
      error: string;
    }[];
    expect(dead.map((d) => d.event)).toEqual([first]);
    expect(dead[0]?.error).toBe('HTTP 500');

    await replayDeadEvent(running, receiver, first as string);
  });
});

describe('event webhooks: a retry whose scheduler job is lost', () => {
  const receiver = new WebhookReceiver();
  let running: RunningHub;

  beforeAll(async () => {
    running = await startWithReceiver(receiver, async (url) =>
      startTestHub({
        configDir: await webhookConfigDir(url),
        webhookPollMs: 50,
        // The first retry waits 1–2 s: time enough to remove its job before it fires.
        webhookRetryBaseMs: 2_000,
        webhookOverdueRetryMs: 500,
        schedulerPollMs: 50,
      }),
    );
  });
  afterAll(() => running?.stop());

  it('the loop takes the lane up once the retry is overdue: every event arrives once, in order', async () => {
    const db = running.hub.db;
    const api = apiClient(running.url);
    receiver.mode = 'fail';
    const session = await api.createSession('hooks');
    // The lane's head was refused once: it waits for a retry, which its scheduler job would wake.
    const [head] = await until(
      async () =>
        (
          await db.query<{ id: string; endpoint: string; lane: string }>(
            `SELECT id, endpoint, lane FROM webhook_outbox
             WHERE session_id = $1 AND state = 'pending' AND attempts > 0`,
            [session.session_id],
          )
        ).rows,
      (rows) => rows.length === 1,
    );
    // That job is lost (set aside, or gone with Redis's data).
    expect(await running.hub.scheduler.cancel(laneJobId({ endpoint: head!.endpoint, key: head!.lane }))).toBe(
      true,
    );
    receiver.mode = 'up';
    // Later events of the session queue up behind the head meanwhile.
    expect((await api.chat(session.token, 'after the lost retry')).status).toBe(200);
    await until(
      async () =>
        (
          await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM webhook_outbox WHERE session_id = $1 AND state <> 'delivered'`,
            [session.session_id],
          )
        ).rows[0]?.n,
      (n) => n === 0,
      30_000,
    );
    const expected = await outboxOrder(running, session.session_id);
    expect(expected.length).toBeGreaterThanOrEqual(4); // started, greeting, received, sent
    // Each taken once (`accepted` keeps every 2xx, a second one too), in the outbox's order.
    expect(receiver.accepted.filter((e) => e.session_id === session.session_id).map((e) => e.id)).toEqual(
      expected,
    );
    const { rows } = await db.query<{ attempts: number }>(
      'SELECT attempts FROM webhook_outbox WHERE id = $1',
      [head!.id],
    );
    expect(rows[0]?.attempts).toBe(2); // refused once, then sent by the loop
    expect(receiver.badSignatures).toBe(0);
  });
});

describe('event webhooks: human handoff', () => {
  const receiver = new WebhookReceiver();
  let running: RunningHub;
  const ADMIN_TOKEN = 'operator-secret-for-the-webhook-tests-0123456789';

  beforeAll(async () => {
    const script = await fs.readFile(
      path.join(REPO_ROOT, 'test/fixtures/handoff/bots/helpdesk/message.bas'),
      'utf8',
    );
    running = await startWithReceiver(receiver, async (url) =>
      startTestHub({
        adminToken: ADMIN_TOKEN,
        configDir: await webhookConfigDir(url, { 'message.bas': script }, [
          'handoff.requested',
          'handoff.assigned',
          'handoff.ended',
          'session.ended',
        ]),
        webhookPollMs: 50,
        schedulerPollMs: 50,
      }),
    );
  });
  afterAll(() => running?.stop());

  it('a handoff requested, claimed and released is three events, only the subscribed ones', async () => {
    const api = apiClient(running.url);
    const { made, client: ana } = await agentWithStatus(
      running.url,
      ADMIN_TOKEN,
      { name: 'Ana', bots: ['hooks'] },
      'away',
    );
    const person = await api.createSession('hooks');
    expect((await api.chat(person.token, 'I want a human please')).status).toBe(200);
    expect((await ana.call('PUT', '/api/agent/status', { body: { status: 'available' } })).status).toBe(200);
    expect((await ana.call('POST', `/api/agent/conversations/${person.session_id}/claim`)).status).toBe(200);
    expect((await ana.call('POST', `/api/agent/conversations/${person.session_id}/release`)).status).toBe(
      200,
    );
    const events = await until(
      () => receiver.bySession().get(person.session_id) ?? [],
      (e) => e.length >= 3,
    );
    expect(events.map((e) => e.type)).toEqual(['handoff.requested', 'handoff.assigned', 'handoff.ended']);
    expect(events[1]?.data).toMatchObject({ agent_id: made.agent_id });
    expect(events[0]?.data.handoff_id).toBe(events[2]?.data.handoff_id);
    expect(receiver.badShapes).toEqual([]);
  });
});
