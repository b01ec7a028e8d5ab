import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUTTON_EXPIRED_TEXT } from '../../adapters/telegram/webhook/routes.ts';
import * as doc from '../fixtures/telegram/updates.ts';
import { adminClient, rowsMentioningAny } from '../helpers/admin.ts';
import { REPO_ROOT, type RunningHub } from '../helpers/hub.ts';
import type { TelegramBotApi } from '../helpers/telegram-bot-api.ts';
import { postTelegramUpdate, startTelegramHub, stopTelegramHub } from '../helpers/telegram-hub.ts';
import { until } from '../helpers/until.ts';

const TOKEN = '7100000003:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDerase';
const SECRET = 'hub-secret_erasure_0123456789';
const ADMIN_TOKEN = 'telegram-erasure-admin-token-of-32-chars';
const ANA = 934_517_001;
const BEN = 934_628_002;

/**
 * Erasing a person who pressed buttons on Telegram, through the adapter and the local Bot API
 * stand-in: the long button values kept for their sessions (what the buttons send back, stored
 * under a key the button carries) go with everything else of theirs; another person's stay.
 */
describe('erasing a person who pressed Telegram buttons', () => {
  let api: TelegramBotApi;
  let running: RunningHub;
  let updates = 0;
  const db = () => running.hub.db;

  beforeAll(async () => {
    ({ api, running } = await startTelegramHub(
      { token: TOKEN, secret: SECRET, bot: 'menu' },
      { configDir: path.join(REPO_ROOT, 'test/fixtures/config'), adminToken: ADMIN_TOKEN },
    ));
  });
  afterAll(() => stopTelegramHub({ api, running }));

  const deliver = (update: unknown) => postTelegramUpdate(running.url, update, SECRET);
  const say = (chat: number, text: string) =>
    deliver(doc.variant(doc.textMessage, { updateId: chat + ++updates, userId: chat, text }));
  const press = (chat: number, data: string) => {
    const update = doc.variant(doc.callbackQueryInChat, {
      updateId: chat + ++updates,
      userId: chat,
      text: data,
    });
    return { update, response: deliver(update) };
  };
  const texts = (chat: number) => api.sentTo(chat).map((c) => c.body.text as string);

  /** Asks the menu bot for its order card; the callback_data of its button (a stored key). */
  async function orderCard(chat: number): Promise<string> {
    await say(chat, 'order');
    const card = await until(() => api.sentTo(chat).find((c) => c.body.text === 'Your order'), Boolean);
    const data = card!.body.reply_markup.inline_keyboard[0][0].callback_data as string;
    expect(data).toMatch(/^sb:/);
    return data;
  }

  const userOf = async (chat: number) =>
    (
      await db().query<{ user_id: string }>(
        `SELECT user_id FROM user_identities WHERE channel = 'telegram' AND native_id = $1`,
        [String(chat)],
      )
    ).rows[0]!.user_id;

  /** Rows of any table whose text mentions one of `needles`. */
  async function rowsMentioning(needles: string[]): Promise<string[]> {
    const { tables, found } = await rowsMentioningAny(db(), needles);
    expect(tables).toEqual(expect.arrayContaining(['channel_values', 'sessions']));
    return found;
  }

  it('leaves nothing of theirs, their stored button values included; the other person’s buttons still work', async () => {
    const anaData = await orderCard(ANA);
    const benData = await orderCard(BEN);
    const ana = await userOf(ANA);
    const ben = await userOf(BEN);
    // One value each, kept for each one's session under a key of its own (the value names the person).
    expect(anaData).not.toBe(benData);
    const kept = await db().query<{ key: string; value: string; session_id: string }>(
      `SELECT key, value, session_id FROM channel_values WHERE channel = 'telegram' ORDER BY value`,
    );
    expect(kept.rows.map((r) => r.value).sort()).toEqual(
      [ana, ben].map((u) => `confirm order for ${u}: deliver to the address on file`).sort(),
    );

    await press(ANA, anaData).response;
    await until(
      () => texts(ANA),
      (t) => t.includes(`menu got confirm order for ${ana}: deliver to the address on file`),
    );
    const { rows: sessions } = await db().query<{ id: string }>(
      'SELECT id FROM sessions WHERE user_id = $1',
      [ana],
    );
    expect(sessions.length).toBeGreaterThan(0);

    const res = await adminClient(running.url, ADMIN_TOKEN)('DELETE', `/api/users/${ana}`);
    expect(res.status).toBe(200);

    // Nothing in any table mentions Ana: her user, chat, sessions, or the key her button carries,
    // but the erasure's own event (it names the erased user id only).
    const anaKey = anaData.slice('sb:'.length);
    const mentions = await rowsMentioning([ana, String(ANA), anaKey, ...sessions.map((s) => s.id)]);
    expect(mentions.filter((m) => !(m.startsWith('session_events:') && m.includes('user.erased')))).toEqual(
      [],
    );
    expect(
      (await db().query(`SELECT key FROM channel_values WHERE channel = 'telegram'`)).rows.map((r) => r.key),
    ).toEqual([`callback:${benData.slice('sb:'.length)}`]);

    // Ben's button still sends his value.
    await press(BEN, benData).response;
    await until(
      () => texts(BEN),
      (t) => t.includes(`menu got confirm order for ${ben}: deliver to the address on file`),
    );
    // Ana's old button: the press is answered that it expired, and nothing is queued for it.
    const before = (await db().query('SELECT count(*)::int AS n FROM messages')).rows[0];
    const late = press(ANA, anaData);
    expect(await (await late.response).json()).toEqual({
      status: 'ignored',
      reason: 'the button’s value is no longer kept',
    });
    await until(
      () =>
        api.calls.filter(
          (c) =>
            c.method === 'answerCallbackQuery' && c.body.callback_query_id === late.update.callback_query.id,
        ),
      (c) => c.length === 1,
    );
    expect(
      api.calls.find(
        (c) =>
          c.method === 'answerCallbackQuery' && c.body.callback_query_id === late.update.callback_query.id,
      )?.body.text,
    ).toBe(BUTTON_EXPIRED_TEXT);
    expect((await db().query('SELECT count(*)::int AS n FROM messages')).rows[0]).toEqual(before);
    expect(
      (await db().query('SELECT 1 FROM user_identities WHERE native_id = $1', [String(ANA)])).rows,
    ).toEqual([]);
  });
});
