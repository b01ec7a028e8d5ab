import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HubConfig } from '../../src/config/env.ts';
import { insertBroadcast, markBroadcastFinished } from '../../src/outbound/broadcast-store.ts';
import { BroadcastService } from '../../src/outbound/broadcasts.ts';
import type { OutboundService } from '../../src/outbound/service.ts';
import type { Scheduler } from '../../src/scheduler/scheduler.ts';
import { WEBHOOK_EVENT_TYPES } from '../../src/webhooks/settings.ts';
import { adminClient } from '../helpers/admin.ts';
import { agentClient, agentWithStatus, createAgentVia } from '../helpers/agents.ts';
import { switchboardCli } from '../helpers/cli.ts';
import { silentLogger } from '../helpers/database.ts';
import { apiClient, REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';
import {
  type ReceivedEvent,
  replayDeadEvent,
  startWithReceiver,
  WebhookReceiver,
  webhookConfigDir,
} from '../helpers/webhook-receiver.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-broadcast-webhook-tests-0123';
const BROADCAST_EVENTS = [
  'broadcast.started',
  'broadcast.progress',
  'broadcast.dispatched',
  'broadcast.completed',
];
const PROGRESS_MS = 600;

/**
 * `hooks` sends the broadcast and handoff events (and session.started) to the receiver; `quiet`,
 * a second bot of the same hub, has no webhooks at all.
 */
async function configDir(url: string): Promise<string> {
  const script = await fs.readFile(
    path.join(REPO_ROOT, 'test/fixtures/handoff/bots/helpdesk/message.bas'),
    'utf8',
  );
  const dir = await webhookConfigDir(url, { 'message.bas': script }, [
    ...BROADCAST_EVENTS,
    'session.started',
    'handoff.requested',
    'handoff.assigned',
    'handoff.transferred',
    'handoff.ended',
  ]);
  await fs.mkdir(path.join(dir, 'bots/quiet'), { recursive: true });
  await fs.writeFile(
    path.join(dir, 'bots/quiet/bot.json'),
    JSON.stringify({ greeting: 'Hello from quiet', defaultReply: 'Noted.' }),
  );
  return dir;
}

/** What the outbox holds for a broadcast, in order: the order every receiver must see. */
async function laneOrder(running: RunningHub, broadcastId: string): Promise<string[]> {
  const { rows } = await running.hub.db.query<{ event_id: string }>(
    'SELECT event_id FROM webhook_outbox WHERE ordering_key = $1 ORDER BY id',
    [`broadcast:${broadcastId}`],
  );
  return rows.map((r) => r.event_id);
}

const ofBroadcast = (receiver: WebhookReceiver, id: string): ReceivedEvent[] =>
  receiver.firstArrivals().filter((e) => e.data.broadcast_id === id);

/** A broadcast to `n` new API sessions of `bot`, at `rate` a second; its id. */
async function broadcastTo(running: RunningHub, bot: string, n: number, rate: number): Promise<string> {
  const api = apiClient(running.url);
  const sessions = [];
  for (let i = 0; i < n; i++) sessions.push(await api.createSession(bot));
  const res = await adminClient(running.url, ADMIN_TOKEN)('POST', '/api/admin/broadcasts', {
    bot,
    channel: 'api',
    to: sessions.map((s) => s.session_id),
    text: 'We are closed on Monday',
    rate_per_second: rate,
  });
  expect(res.status).toBe(202);
  return res.json.broadcast_id as string;
}

/** The receiver listening, and a hub (`hooks`, `quiet`) polling its outbox and scheduler fast; stopping it stops both. */
function startHooksHub(receiver: WebhookReceiver, retries: Partial<HubConfig>): Promise<RunningHub> {
  return startWithReceiver(receiver, async (url) =>
    startTestHub({
      configDir: await configDir(url),
      adminToken: ADMIN_TOKEN,
      webhookPollMs: 50,
      webhookBroadcastProgressMs: PROGRESS_MS,
      schedulerPollMs: 50,
      ...retries,
    }),
  );
}

describe('broadcast event webhooks', () => {
  const receiver = new WebhookReceiver();
  let running: RunningHub;

  beforeAll(async () => {
    running = await startHooksHub(receiver, { webhookRetryBaseMs: 200 });
  });
  afterAll(() => running?.stop());
  afterEach(() => {
    receiver.mode = 'up';
  });

  it('a broadcast is started, throttled progress, dispatched and completed: signed, in order, session-less', async () => {
    // 8 recipients at 4 a second: about two seconds of dispatch, so progress is due more than once.
    const id = await broadcastTo(running, 'hooks', 8, 4);
    const events = await until(
      () => ofBroadcast(receiver, id),
      (e) => e.some((x) => x.type === 'broadcast.completed'),
    );
    expect(receiver.badSignatures).toBe(0);
    expect(receiver.badShapes).toEqual([]);
    expect(events.map((e) => e.id)).toEqual(await laneOrder(running, id));
    const types = events.map((e) => e.type);
    expect(types.join(' ')).toMatch(
      /^broadcast\.started( broadcast\.progress)* broadcast\.dispatched( broadcast\.progress)* broadcast\.completed$/,
    );
    expect(types).toContain('broadcast.progress');
    for (const e of events) {
      expect(e).toMatchObject({ bot: 'hooks', session_id: null, data: { broadcast_id: id, channel: 'api' } });
      expect(Object.keys(e).sort()).toEqual(['bot', 'created_at', 'data', 'id', 'session_id', 'type']);
    }
    expect(events[0]?.data).toMatchObject({ total: 8, opted_out: 0, rate_per_second: 4 });
    expect(events.at(-1)?.data).toMatchObject({ status: 'completed', total: 8, queued: 0, failed: 0 });
    // Progress: never more often than WEBHOOK_BROADCAST_PROGRESS_MS, each with other counts than the last.
    const progress = events.filter((e) => e.type === 'broadcast.progress');
    for (const [i, p] of progress.entries()) {
      expect(p.data).toMatchObject({ status: 'running', total: 8 });
      const before = progress[i - 1];
      if (!before) continue;
      expect(Date.parse(p.created_at) - Date.parse(before.created_at)).toBeGreaterThanOrEqual(
        PROGRESS_MS - 2,
      );
      expect(p.data).not.toEqual(before.data);
    }
    // Not one event per recipient: the recipients' own sessions got no broadcast event.
    const { rows } = await running.hub.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM webhook_outbox WHERE type LIKE 'broadcast.%' AND session_id IS NOT NULL`,
    );
    expect(rows[0]?.n).toBe(0);
    // The API answers completed as well.
    const status = await adminClient(running.url, ADMIN_TOKEN)('GET', `/api/admin/broadcasts/${id}`);
    expect(status.json.status).toBe('completed');
  });

  it('a progress point written again after a crash (the tick re-run, or a second runner) is one event, by its id', async () => {
    const { db, bots } = running.hub;
    const id = 'b7c1d2e3-f405-4a6b-8c7d-0e1f2a3b4c5d';
    await db.transaction((tx) =>
      insertBroadcast(
        tx,
        {
          id,
          bot: 'hooks',
          channel: 'api',
          text: 'We are closed on Monday',
          template: null,
          subject: null,
          ratePerSecond: 10,
          audience: { to: 3 },
          idempotencyKey: null,
          requestHash: null,
        },
        { kind: 'keys', nativeKeys: ['crash-a', 'crash-b', 'crash-c'] },
      ),
    );
    // Every recipient handed over, none sent yet: the run watches, reporting progress.
    expect(await markBroadcastFinished(db, id)).toBe(true);
    const { rows: recipients } = await db.query<{ id: string }>(
      'SELECT id FROM outbound_messages WHERE broadcast_id = $1 ORDER BY native_key',
      [id],
    );
    const runner = (scheduler: Pick<Scheduler, 'schedule'>) =>
      new BroadcastService({
        db,
        bots,
        scheduler: scheduler as Scheduler,
        logger: silentLogger,
        outbound: {} as OutboundService,
        adapters: new Map(),
        rateLimits: {},
        progressMs: PROGRESS_MS,
      });
    const scheduled: unknown[] = [];
    const next: Pick<Scheduler, 'schedule'> = {
      schedule: async (_job, payload) => {
        scheduled.push(payload);
        return 'next-tick';
      },
    };
    // The tick's payload: the throttle says a progress event is due.
    const due = { reportedAt: Date.now() - 2 * PROGRESS_MS };
    // Runner A writes the progress event, then dies before its next tick is scheduled.
    const dying = runner({
      schedule: async () => {
        throw new Error('SIGKILL before the next tick was scheduled');
      },
    });
    await expect(dying.tick(id, undefined, due)).rejects.toThrow('SIGKILL');
    // The scheduler runs the same tick again, with the same payload, on a restarted worker; and a
    // second runner that took the same job meanwhile does the same.
    await runner(next).tick(id, undefined, due);
    await runner(next).tick(id, undefined, due);
    const progressRows = async () =>
      (
        await db.query<{ event_id: string; data: { queued: number } }>(
          `SELECT event_id, data FROM webhook_outbox WHERE ordering_key = $1 AND type = 'broadcast.progress' ORDER BY id`,
          [`broadcast:${id}`],
        )
      ).rows;
    const once = await progressRows();
    expect(once).toHaveLength(1);
    expect(once[0]!.data).toMatchObject({ status: 'running', queued: 3 });
    // A new progress point is a new event.
    await db.query(`UPDATE outbound_messages SET status = 'failed', error = 'test' WHERE id = $1`, [
      recipients[0]!.id,
    ]);
    await runner(next).tick(id, undefined, due);
    await runner(next).tick(id, undefined, due);
    const twice = await progressRows();
    expect(twice).toHaveLength(2);
    expect(twice[1]!.data).toMatchObject({ queued: 2, failed: 1 });
    expect(twice[1]!.event_id).not.toBe(twice[0]!.event_id);
    // The receiver sees each progress point once.
    const arrived = await until(
      () => ofBroadcast(receiver, id).filter((e) => e.type === 'broadcast.progress'),
      (e) => e.length >= 2,
    );
    expect(arrived.map((e) => e.id)).toEqual(twice.map((r) => r.event_id));
    expect(
      receiver.accepted.filter((e) => e.data.broadcast_id === id && e.type === 'broadcast.progress'),
    ).toHaveLength(2);
  });

  it('a receiver down for a while gets every broadcast event once it is back, in order', async () => {
    await receiver.stopListening();
    const id = await broadcastTo(running, 'hooks', 3, 10);
    // The run completes meanwhile; the lane's head has failed and waits on the scheduler.
    await until(
      async () =>
        (
          await running.hub.db.query(
            `SELECT 1 FROM broadcasts b WHERE b.id = $1 AND b.completed_at IS NOT NULL
               AND EXISTS (SELECT 1 FROM webhook_outbox o WHERE o.ordering_key = 'broadcast:' || b.id::text
                 AND o.state = 'pending' AND o.attempts > 0)`,
            [id],
          )
        ).rows.length,
      (n) => n === 1,
    );
    await receiver.listenAgain();
    const expected = await laneOrder(running, id);
    expect(expected.length).toBeGreaterThanOrEqual(3); // started, dispatched, completed
    const got = await until(
      () => ofBroadcast(receiver, id).map((e) => e.id),
      (e) => e.length >= expected.length,
    );
    expect(got).toEqual(expected);
    expect(ofBroadcast(receiver, id).at(-1)?.type).toBe('broadcast.completed');
  });

  it('a bot without endpoints writes no outbox row, and its broadcast is not watched', async () => {
    const api = apiClient(running.url);
    const person = await api.createSession('quiet');
    expect((await api.chat(person.token, 'hello')).status).toBe(200);
    const id = await broadcastTo(running, 'quiet', 2, 10);
    await until(
      async () =>
        (await adminClient(running.url, ADMIN_TOKEN)('GET', `/api/admin/broadcasts/${id}`)).json.status,
      (s) => s === 'completed',
    );
    const { rows } = await running.hub.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM webhook_outbox WHERE bot = 'quiet'`,
    );
    expect(rows[0]?.n).toBe(0);
    const watched = await running.hub.db.query('SELECT completed_at FROM broadcasts WHERE id = $1', [id]);
    expect(watched.rows[0]?.completed_at).toBeNull();
    // `hooks` subscribes to no message event: its messages write none either.
    const hooks = await api.createSession('hooks');
    expect((await api.chat(hooks.token, 'hello')).status).toBe(200);
    const messages = await running.hub.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM webhook_outbox WHERE type LIKE 'message.%'`,
    );
    expect(messages.rows[0]?.n).toBe(0);
  });

  it('a handoff opened straight to an available agent is requested, then assigned; transferred; ended', async () => {
    const api = apiClient(running.url);
    const { made, client: ana } = await agentWithStatus(
      running.url,
      ADMIN_TOKEN,
      { name: 'Ana', bots: ['hooks'] },
      'available',
    );
    const bob = await createAgentVia(running.url, ADMIN_TOKEN, {
      name: 'Bob',
      email: `bob-${Date.now()}@example.com`,
      bots: ['hooks'],
    });
    const person = await api.createSession('hooks');
    expect((await api.chat(person.token, 'I want a human please')).status).toBe(200);
    const conversation = `/api/agent/conversations/${person.session_id}`;
    const moved = await ana.call('POST', `${conversation}/transfer`, { body: { agent_id: bob.agent_id } });
    expect(moved.status).toBe(200);
    const bobClient = agentClient(running.url, { token: bob.token });
    expect((await bobClient.call('POST', `${conversation}/release`)).status).toBe(200);
    const events = await until(
      () => receiver.bySession().get(person.session_id) ?? [],
      (e) => e.length >= 5,
    );
    expect(events.map((e) => e.type)).toEqual([
      'session.started',
      'handoff.requested',
      'handoff.assigned',
      'handoff.transferred',
      'handoff.ended',
    ]);
    expect(receiver.badShapes).toEqual([]);
    const handoffId = events[1]?.data.handoff_id;
    expect(events[2]?.data).toMatchObject({ agent_id: made.agent_id, handoff_id: handoffId });
    expect(events[3]?.data).toMatchObject({
      from_agent_id: made.agent_id,
      agent_id: bob.agent_id,
      handoff_id: handoffId,
    });
    expect(events[4]?.data).toMatchObject({ agent_id: bob.agent_id, handoff_id: handoffId });
  });

  it('README "Event webhooks" documents every event type', async () => {
    const readme = await fs.readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Event webhooks'));
    const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| event |')));
    for (const type of WEBHOOK_EVENT_TYPES) expect(table).toContain(`\`${type}\``);
  });
});

describe('broadcast event webhooks: dead letters', () => {
  const receiver = new WebhookReceiver();
  let running: RunningHub;

  beforeAll(async () => {
    running = await startHooksHub(receiver, { webhookRetryBaseMs: 100, webhookMaxAgeMs: 1_500 });
  });
  afterAll(() => running?.stop());

  it('a refused broadcast event is dead-lettered, the later ones go on, and replay sends it', async () => {
    receiver.mode = 'fail';
    const id = await broadcastTo(running, 'hooks', 2, 10);
    const [started] = await until(
      () => laneOrder(running, id),
      (e) => e.length >= 1,
    );
    receiver.refuse.add(started as string);
    receiver.mode = 'up';
    await until(
      async () =>
        (await running.hub.db.query('SELECT completed_at FROM broadcasts WHERE id = $1', [id])).rows[0]
          ?.completed_at,
      (at) => Boolean(at),
    );
    const expected = await laneOrder(running, id);
    expect(expected.length).toBeGreaterThanOrEqual(3); // started, dispatched, completed
    const got = await until(
      () => ofBroadcast(receiver, id).map((e) => e.id),
      (e) => e.length >= expected.length - 1,
    );
    expect(got).toEqual(expected.slice(1));
    const dead = JSON.parse(await switchboardCli(running, ['webhooks', 'failed', '--json'])) as {
      event: string;
      type: string;
      session: string | null;
      ordering_key: string;
    }[];
    expect(dead).toEqual([
      expect.objectContaining({
        event: started,
        type: 'broadcast.started',
        session: null,
        ordering_key: `broadcast:${id}`,
      }),
    ]);
    await replayDeadEvent(running, receiver, started as string);
    expect(receiver.badShapes).toEqual([]);
  });
});
