import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlackAdapter, loadSlackConfig } from '../../adapters/slack/index.ts';
import { slackSignature } from '../../adapters/slack/webhook/verify.ts';
import { SessionSettingsSchema } from '../../src/lifecycle/rules.ts';
import * as doc from '../fixtures/slack/events.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import {
  type SlackWebApi,
  startSlackWebApi,
  webApiError,
  webApiRateLimited,
} from '../helpers/slack-web-api.ts';
import { postSlackWebhook, type SlackDelivery } from '../helpers/slack-webhook.ts';
import { until } from '../helpers/until.ts';

const FIXTURE_CONFIG = path.join(REPO_ROOT, 'test/fixtures/config');
const DIALOG_CONFIG = path.join(REPO_ROOT, 'test/fixtures/dialog');
const SIGNING_SECRET = '8f742231b10e8888abcd99yyyzzz85a5';
const BOT_TOKEN = 'xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy';
const TEAM = 'T123ABC456';
const BOT_USER = 'U0LAN0Z89';
const RATE_LIMIT = 8;
const NOTICE = SessionSettingsSchema.parse({}).rateLimitNotice;

const env = (api: SlackWebApi, extra: Record<string, string> = {}) => ({
  SLACK_SIGNING_SECRET: SIGNING_SECRET,
  SLACK_BOT_TOKEN: BOT_TOKEN,
  SLACK_API_URL: api.url,
  ...extra,
});

const now = () => String(Math.floor(Date.now() / 1000));

/** POSTs a body as Slack does, signed with this app's secret unless `o` says otherwise. */
const deliver = (hub: RunningHub, route: '' | '/interactions', raw: string, o: Partial<SlackDelivery> = {}) =>
  postSlackWebhook(hub.url, route, raw, { secret: SIGNING_SECRET, ...o });

const event = (hub: RunningHub, body: unknown, o: Parameters<typeof deliver>[3] = {}) =>
  deliver(hub, '', JSON.stringify(body), o);

describe('Slack through a whole hub', () => {
  let api: SlackWebApi;
  let running: RunningHub;
  let serial = 0;

  beforeAll(async () => {
    api = await startSlackWebApi(BOT_TOKEN);
    running = await startTestHub(
      { configDir: FIXTURE_CONFIG, rateLimitPerMinute: RATE_LIMIT },
      { adapters: [createSlackAdapter(loadSlackConfig(env(api))!)] },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await api?.close();
  });

  /** A person and a direct message conversation of their own for each test. */
  const person = () => {
    const n = String(++serial).padStart(4, '0');
    return { user: `U9${n}PERSON`, dm: `D9${n}CONV` };
  };
  let clock = 1_700_000_000;
  const ts = () => `${++clock}.000100`;

  /** `message.im` from the documentation, from this person, with a ts (and an event id) of its own. */
  const dm = (p: { user: string; dm: string }, text: string, at = ts()) =>
    doc.wrap(
      { ...doc.directMessage, channel: p.dm, user: p.user, text, ts: at, event_ts: at },
      { eventId: `Ev${at}` },
    );

  const texts = (channel: string) => api.postedTo(channel).map((c) => c.args.text as string);
  const query = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    (await running.hub.db.query(sql, params)).rows as T[];

  it('answers url_verification with the challenge (signed), and refuses it unsigned', async () => {
    const ok = await event(running, doc.urlVerification);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ challenge: doc.urlVerification.challenge });
    const forged = await event(running, doc.urlVerification, { secret: 'not-the-signing-secret' });
    expect(forged.status).toBe(401);
  });

  it('a direct message is answered in the conversation with chat.postMessage; the person is identified', async () => {
    const p = person();
    api.users.set(p.user, 'Ana Lima');
    const body = dm(p, 'Hello hello can you hear me?');
    const res = await event(running, body);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: 'accepted',
      envelope_id: `slack:${TEAM}:${p.dm}:${body.event.ts}`,
    });
    await until(
      () => texts(p.dm),
      (t) => t.length >= 2,
    );
    expect(texts(p.dm)).toEqual(['welcome', 'echo Hello hello can you hear me? #1']);
    for (const call of api.postedTo(p.dm)) {
      expect(call.authorization).toBe(`Bearer ${BOT_TOKEN}`);
      expect(call.args.thread_ts).toBeUndefined();
    }
    const [session] = await query<{ id: string; user_id: string | null; meta: { name?: string } }>(
      `SELECT id, user_id, meta FROM sessions WHERE channel = 'slack' AND native_key = $1`,
      [`${TEAM}:${p.user}`],
    );
    expect(session!.user_id).not.toBeNull();
    // The name comes from users.info.
    expect(session!.meta.name).toBe('Ana Lima');
    expect(
      await query(
        `SELECT user_id, display_name FROM user_identities WHERE channel = 'slack' AND native_id = $1`,
        [`${TEAM}:${p.user}`],
      ),
    ).toEqual([{ user_id: session!.user_id, display_name: 'Ana Lima' }]);
    await until(
      () =>
        query<{ delivery_status: string; channel_message_id: string }>(
          `SELECT delivery_status, channel_message_id FROM messages WHERE session_id = $1 AND role = 'assistant'`,
          [session!.id],
        ),
      (r) =>
        r.length === 2 &&
        r.every((m) => m.delivery_status === 'sent' && m.channel_message_id.startsWith(`${p.dm}:`)),
    );
    // The person's next message does not ask for the name again.
    await event(running, dm(p, 'again'));
    await until(
      () => texts(p.dm),
      (t) => t.length >= 3,
    );
    expect(api.calls.filter((c) => c.method === 'users.info' && c.args.user === p.user)).toHaveLength(1);
  });

  it('a name lookup that fails or hangs does not hold the message up: it goes on without a name', async () => {
    const slow = person();
    api.users.set(slow.user, 'Slow Sam');
    api.script((c) => c.method === 'users.info' && c.args.user === slow.user, {
      status: 200,
      body: { ok: true, user: { id: slow.user, real_name: 'Slow Sam' } },
      delayMs: 3_000,
    });
    const res = await event(running, dm(slow, 'hi'));
    expect(await res.json()).toMatchObject({ status: 'accepted' });
    const unknown = person();
    expect(await (await event(running, dm(unknown, 'hi'))).json()).toMatchObject({ status: 'accepted' });
    for (const p of [slow, unknown]) {
      await until(
        () => texts(p.dm),
        (t) => t.length >= 2,
      );
      const [session] = await query<{ meta: { name?: string } }>(
        `SELECT meta FROM sessions WHERE channel = 'slack' AND native_key = $1`,
        [`${TEAM}:${p.user}`],
      );
      expect(session!.meta.name).toBeUndefined();
    }
  });

  it('a mention is answered in its thread; its message twin and the retries of both are processed once', async () => {
    const p = person();
    const channel = 'C123ABC456';
    const at = ts();
    const mention = doc.wrap(
      { ...doc.appMention, user: p.user, ts: at, event_ts: at },
      { eventId: `EvM${at}` },
    );
    const twin = doc.wrap(
      { ...doc.channelMessage, channel, user: p.user, text: doc.appMention.text, ts: at, event_ts: at },
      { eventId: `EvT${at}` },
    );
    const results = await Promise.all([
      event(running, mention),
      event(running, twin),
      event(running, mention, {
        headers: { 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_timeout' },
      }),
      event(running, twin, { headers: { 'x-slack-retry-num': '2', 'x-slack-retry-reason': 'http_error' } }),
    ]);
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const statuses = (await Promise.all(results.map((r) => r.json()))).map((b) => b.status).sort();
    expect(statuses).toEqual(['accepted', 'duplicate', 'duplicate', 'duplicate']);
    const threaded = () => api.postedTo(channel).filter((c) => c.args.thread_ts === at);
    await until(threaded, (c) => c.length >= 2);
    expect(threaded().map((c) => c.args.text)).toEqual([
      'welcome',
      'echo is it everything a river should be? #1',
    ]);
    // A second mention in the same thread goes to the same session.
    const later = ts();
    await event(
      running,
      doc.wrap(
        {
          ...doc.appMention,
          user: p.user,
          text: `<@${BOT_USER}> and then?`,
          ts: later,
          event_ts: later,
          thread_ts: at,
        },
        { eventId: `EvL${later}` },
      ),
    );
    await until(threaded, (c) => c.length >= 3);
    expect(threaded()[2]!.args.text).toBe('echo and then? #2');
    const sessions = await query(
      `SELECT native_key FROM sessions WHERE channel = 'slack' AND native_key LIKE $1`,
      [`${TEAM}:${p.user}#%`],
    );
    expect(sessions).toEqual([{ native_key: `${TEAM}:${p.user}#${channel}:${at}` }]);
  });

  it("bad signatures, stale timestamps: 401 and nothing queued; the hub's own replies and other bots are never answered", async () => {
    const p = person();
    const body = dm(p, 'forged');
    const raw = JSON.stringify(body);
    const stale = String(Math.floor(Date.now() / 1000) - 6 * 60);
    for (const res of [
      await event(running, body, { secret: 'not-the-signing-secret' }),
      await event(running, body, { signature: `v0=${'0'.repeat(64)}` }),
      await event(running, body, { timestamp: stale, signature: slackSignature(raw, stale, SIGNING_SECRET) }),
      await deliver(running, '', `${raw} `, { signature: slackSignature(raw, now(), SIGNING_SECRET) }),
    ]) {
      expect(res.status).toBe(401);
      expect((await res.json()).error.code).toBe('invalid_signature');
    }
    expect(
      await query(`SELECT 1 FROM inbox WHERE envelope_id = $1`, [`slack:${TEAM}:${p.dm}:${body.event.ts}`]),
    ).toEqual([]);
    // What the hub posts comes back as a bot message: acknowledged, never answered.
    const echo = ts();
    for (const bot of [
      doc.wrap({ ...doc.botMessage, channel: p.dm, channel_type: 'im', ts: echo }),
      doc.wrap({ ...doc.directMessage, channel: p.dm, user: BOT_USER, bot_id: 'B0BOT', ts: ts() }),
      // Another app's bot user writing without a subtype: its bot_id gives it away.
      doc.wrap({ ...doc.directMessage, channel: p.dm, user: 'U0OTHERBOT', bot_id: 'B0OTHER', ts: ts() }),
      doc.wrap({ ...doc.directMessage, channel: p.dm, user: BOT_USER, ts: ts() }),
      doc.wrap({ ...doc.messageChanged, channel: p.dm }),
    ]) {
      const res = await event(running, bot);
      expect(res.status).toBe(200);
      expect((await res.json()).status).toBe('ignored');
    }
    await event(running, dm(p, 'real'));
    await until(
      () => texts(p.dm),
      (t) => t.length >= 2,
    );
    expect(texts(p.dm)).toEqual(['welcome', 'echo real #1']);
  });

  it("a button press comes back through /interactions as the button's value, in the same thread", async () => {
    const p = person();
    const channel = 'CBR2V3XEX';
    const at = ts();
    await event(
      running,
      doc.wrap({ ...doc.appMention, channel, user: p.user, ts: at, event_ts: at }, { eventId: `EvB${at}` }),
    );
    const threaded = () => api.postedTo(channel).filter((c) => c.args.thread_ts === at);
    await until(threaded, (c) => c.length >= 2);
    const press = structuredClone(doc.blockActions) as doc.Json;
    press.team.id = TEAM;
    press.user = { id: p.user, username: 'jtorrance', name: 'jtorrance', team_id: TEAM };
    press.container = { ...press.container, message_ts: threaded()[1]!.args.thread_ts, thread_ts: at };
    press.message = { ...press.message, ts: `${at}9`, thread_ts: at };
    press.actions[0].value = 'size:m';
    const body = doc.interactionBody(press);
    const bad = await deliver(running, '/interactions', body, { secret: 'not-the-signing-secret' });
    expect(bad.status).toBe(401);
    const res = await deliver(running, '/interactions', body);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
    await until(threaded, (c) => c.length >= 3);
    expect(threaded()[2]!.args.text).toBe('echo size:m #2');
    // The same press delivered again counts once: the next message's reply follows the first press's.
    expect((await deliver(running, '/interactions', body)).status).toBe(200);
    await event(
      running,
      doc.wrap(
        { ...doc.appMention, channel, user: p.user, text: 'next', ts: ts(), thread_ts: at },
        { eventId: 'EvNext' },
      ),
    );
    await until(threaded, (c) => c.length >= 4);
    expect(threaded()[3]!.args.text).toBe('echo next #3');
  });

  it("an event not durably accepted within Slack's 3 s is answered 503; Slack's retry then finds it a duplicate", async () => {
    const p = person();
    const body = dm(p, 'slow');
    // Another connection holds the inbox, as a stalled database would: the accept cannot finish.
    const holder = new pg.Client({ connectionString: running.hub.config.databaseUrl });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE inbox IN ACCESS EXCLUSIVE MODE');
      const res = await event(running, body);
      expect(res.status).toBe(503);
      expect((await res.json()).error.code).toBe('unavailable');
    } finally {
      await holder.query('COMMIT');
      await holder.end();
    }
    // The acceptance went on once the inbox was free: the message is answered, once.
    await until(
      () => texts(p.dm),
      (t) => t.length >= 2,
    );
    const retry = await event(running, body, {
      headers: { 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_error' },
    });
    expect(retry.status).toBe(200);
    expect(await retry.json()).toMatchObject({ status: 'duplicate' });
    // Nothing more for the retry: the person's next message is answered right after the first.
    expect((await event(running, dm(p, 'after'))).status).toBe(200);
    await until(
      () => texts(p.dm),
      (t) => t.length >= 3,
    );
    expect(texts(p.dm)).toEqual(['welcome', 'echo slow #1', 'echo after #2']);
  });

  it('rate limited by Slack (429 Retry-After) the reply waits and goes once; not_in_channel fails at once', async () => {
    const p = person();
    api.script((c) => c.args.channel === p.dm && c.args.text === 'welcome', webApiRateLimited(1));
    await event(running, dm(p, 'busy'));
    await until(
      () => texts(p.dm),
      (t) => t.includes('echo busy #1'),
      20_000,
    );
    expect(texts(p.dm)).toEqual(['welcome', 'welcome', 'echo busy #1']);

    const q = person();
    for (let i = 0; i < 2; i++) api.script((c) => c.args.channel === q.dm, webApiError('not_in_channel'));
    await event(running, dm(q, 'hi'));
    const rows = await until(
      () =>
        query<{ delivery_status: string; delivery_error: string; delivery_attempts: number }>(
          `SELECT m.delivery_status, m.delivery_error, m.delivery_attempts FROM messages m JOIN sessions s ON s.id = m.session_id
           WHERE s.channel = 'slack' AND s.native_key = $1 AND m.role = 'assistant' ORDER BY m.seq`,
          [`${TEAM}:${q.user}`],
        ),
      (r) => r.length === 2 && r.every((m) => m.delivery_status === 'failed'),
    );
    expect(rows[0]!.delivery_error).toBe('Slack error not_in_channel');
    expect(rows.map((r) => r.delivery_attempts)).toEqual([1, 1]);
  });

  it('the rate limit holds: messages over it are recorded as refused, and the person is told once', async () => {
    const p = person();
    for (let i = 1; i <= RATE_LIMIT + 2; i++) {
      const res = await event(running, dm(p, `message ${i}`));
      expect(res.status, `message ${i}`).toBe(200);
    }
    const inbound = await until(
      () =>
        query<{ content: string; refused: string | null }>(
          `SELECT m.content, m.payload->>'refused' AS refused FROM messages m JOIN sessions s ON s.id = m.session_id
           WHERE s.channel = 'slack' AND s.native_key = $1 AND m.role = 'user' ORDER BY m.seq`,
          [`${TEAM}:${p.user}`],
        ),
      (r) => r.length === RATE_LIMIT + 2,
    );
    expect(inbound.slice(RATE_LIMIT).map((r) => [r.content, r.refused])).toEqual([
      [`message ${RATE_LIMIT + 1}`, 'rate_limited'],
      [`message ${RATE_LIMIT + 2}`, 'rate_limited'],
    ]);
    await until(
      () => texts(p.dm),
      (t) => t.includes(NOTICE) && t.includes(`echo message ${RATE_LIMIT} #${RATE_LIMIT}`),
    );
    expect(texts(p.dm).filter((t) => t === NOTICE)).toHaveLength(1);
  });
});

describe('Slack with a dialog script', () => {
  let api: SlackWebApi;
  let running: RunningHub;

  beforeAll(async () => {
    api = await startSlackWebApi(BOT_TOKEN);
    running = await startTestHub(
      { configDir: DIALOG_CONFIG },
      { adapters: [createSlackAdapter(loadSlackConfig(env(api, { SLACK_BOT: 'intake' }))!)] },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await api?.close();
  });

  it("HEAR waits for the answer; the choices are buttons, and a press answers with the button's value", async () => {
    const user = 'U7DIALOG';
    const conv = 'D7DIALOG';
    const posted = () => api.postedTo(conv);
    let clock = 1_710_000_000;
    const say = (text: string) => {
      const at = `${++clock}.000200`;
      return event(
        running,
        doc.wrap(
          { ...doc.directMessage, channel: conv, user, text, ts: at, event_ts: at },
          { eventId: `Ev${at}` },
        ),
      );
    };
    await say('hi');
    await until(posted, (c) => c.length >= 1);
    await say('Ana');
    await until(posted, (c) => c.length >= 2);
    expect(posted()[0]!.args.text).toBe('Welcome on slack. What is your name?');
    const question = posted()[1]!.args;
    expect(question.text).toBe('Which plan, Ana?');
    const buttons = question.blocks[1].elements as {
      text: { text: string };
      value: string;
      action_id: string;
    }[];
    expect(buttons.map((b) => [b.text.text, b.value])).toEqual([
      ['Basic', 'Basic'],
      ['Pro', 'Pro'],
    ]);
    const press = structuredClone(doc.blockActions) as doc.Json;
    press.team.id = TEAM;
    press.user = { id: user, username: 'ana', name: 'ana', team_id: TEAM };
    press.channel = { id: conv, name: 'directmessage' };
    press.container = {
      type: 'message',
      message_ts: '1710000002.000300',
      channel_id: conv,
      is_ephemeral: false,
    };
    press.message = { ...press.message, ts: '1710000002.000300' };
    press.actions[0] = {
      ...press.actions[0],
      action_id: buttons[1]!.action_id,
      value: buttons[1]!.value,
      text: buttons[1]!.text,
    };
    expect((await deliver(running, '/interactions', doc.interactionBody(press))).status).toBe(200);
    await until(posted, (c) => c.length >= 3);
    expect(posted()[2]!.args.text).toBe('Thanks Ana (slack), plan Pro');
  });
});
