import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnvelopeInput } from '../../src/envelope.ts';
import { listMessages } from '../../src/store/messages.ts';
import { findOpenSnapshotByKey } from '../../src/store/sessions.ts';
import { tempDir } from '../helpers/database.ts';
import { freePort } from '../helpers/free-port.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { settled } from '../helpers/settled.ts';

const APOLOGY = 'Sorry, that went wrong.';

const wa = (from: string, n: number, text: string): EnvelopeInput => ({
  id: `whatsapp:wamid.parts.${from}.${n}`,
  channel: 'whatsapp',
  bot: 'parts',
  from: { id: from },
  text,
  receivedAt: new Date().toISOString(),
});

/**
 * A TypeScript bot's `ctx.talk(text, { files | card })` stores the files and the card's image in
 * the background. One that failed (a media file that is not there, an invalid card, a host that
 * refuses the connection) failed after the bot's error handling: the whole turn threw, was
 * retried and set aside with no reply — and a refused connection, transient to the queue, was
 * retried without end on the Redis queue, holding the person's later messages behind it. Now
 * it is the bot's error like any other: the apology, the failing part in `turn.bot_error`.
 */
describe("a TypeScript bot's reply whose file or card fails (PostgreSQL, Redis lanes queue)", () => {
  const log = capturingLogger('error');
  const redis = testRedisPrefix();
  let running: RunningHub;
  let refusedUrl: string;

  beforeAll(async () => {
    // Nothing listens there: every connection is refused (ECONNREFUSED, transient to the queue).
    refusedUrl = `http://127.0.0.1:${await freePort()}/kettle.png`;
    const configDir = await tempDir('sbt-reply-parts-');
    const bot = path.join(configDir, 'bots', 'parts');
    await fs.mkdir(path.join(bot, 'media'), { recursive: true });
    await fs.writeFile(path.join(bot, 'media', 'welcome.txt'), 'Welcome aboard.\n');
    await fs.writeFile(path.join(bot, 'bot.json'), JSON.stringify({ apology: APOLOGY }));
    await fs.writeFile(
      path.join(bot, 'handler.ts'),
      [
        'export default {',
        "  onStart(ctx) { ctx.talk('Welcome', { files: ['welcome.txt'] }); },",
        '  onMessage(ctx) {',
        "    ctx.set('seen', ctx.text);",
        "    if (ctx.text === 'brochure') ctx.talk('Here is the brochure', { files: ['brochure.pdf'] });",
        "    else if (ctx.text === 'card') ctx.talk('', { card: { title: 'Kettle', buttons: [{ title: '' }] } });",
        `    else if (ctx.text === 'photo') ctx.talk('A photo', { files: [${JSON.stringify(refusedUrl)}] });`,
        "    else ctx.talk('echo ' + ctx.text);",
        '  },',
        '};',
        '',
      ].join('\n'),
    );
    running = await startTestHub(
      {
        configDir,
        redisUrl: TEST_REDIS_URL,
        redisPrefix: redis.prefix,
        queueRetryBaseMs: 5,
        mediaFetchAllowHosts: ['127.0.0.1'],
      },
      { logger: log.logger },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await redis.cleanup();
  });

  const historyOf = async (from: string) => {
    const snap = await findOpenSnapshotByKey(running.hub.db, {
      bot: 'parts',
      channel: 'whatsapp',
      nativeKey: from,
    });
    expect(snap, `the session of ${from}`).toBeDefined();
    const messages = await listMessages(running.hub.db, snap!.session.id, { limit: 20 });
    return { snap: snap!, history: messages.map((m) => `${m.role}:${m.content}`), messages };
  };

  const botError = (envelopeId: string) => {
    const lines = log.about('turn.bot_error', envelopeId);
    expect(lines).toHaveLength(1);
    return String(lines[0]!.err);
  };

  it("a file from a host that refuses connections: the apology, and the person's next message is answered", async () => {
    const from = '+4915200001';
    const photo = wa(from, 1, 'photo');
    await running.hub.ingress.accept(photo);
    await running.hub.ingress.accept(wa(from, 2, 'after'));
    await settled(running.hub);
    const { snap, history, messages } = await historyOf(from);
    expect(history).toEqual([
      'user:photo',
      'assistant:Welcome',
      `assistant:${APOLOGY}`,
      'user:after',
      'assistant:echo after',
    ]);
    // What the failing hook did is not kept; the greeting before it is, with its file.
    expect(messages[1]!.payload.attachments).toMatchObject([{ name: 'welcome.txt' }]);
    expect(snap.state.variables.seen).toBe('after');
    expect(botError(photo.id)).toMatch(
      new RegExp(`^file "${refusedUrl.replaceAll('.', '\\.')}": .*ECONNREFUSED`),
    );
  });

  it('a media file that is not there: the apology, the file named in the log', async () => {
    const from = '+4915200002';
    const brochure = wa(from, 1, 'brochure');
    await running.hub.ingress.accept(brochure);
    await settled(running.hub);
    const { history } = await historyOf(from);
    expect(history).toEqual(['user:brochure', 'assistant:Welcome', `assistant:${APOLOGY}`]);
    expect(botError(brochure.id)).toBe(
      'file "brochure.pdf": there is no "brochure.pdf" in config/bots/parts/media/',
    );
  });

  it("an invalid card: the apology, the card's fault in the log", async () => {
    const from = '+4915200003';
    const card = wa(from, 1, 'card');
    await running.hub.ingress.accept(card);
    await settled(running.hub);
    const { history } = await historyOf(from);
    expect(history).toEqual(['user:card', 'assistant:Welcome', `assistant:${APOLOGY}`]);
    expect(botError(card.id)).toMatch(/^card 1 \("Kettle"\): buttons\.0\b/);
  });
});
