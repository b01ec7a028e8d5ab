import fs from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnvelopeInput } from '../../src/envelope.ts';
import type { RedisLaneQueue } from '../../src/queue/redis-lane-queue.ts';
import { listMessages } from '../../src/store/messages.ts';
import { findOpenSnapshotByKey } from '../../src/store/sessions.ts';
import { tempDir } from '../helpers/database.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { capturingLogger } from '../helpers/logs.ts';
import { FakeOpenAi, lastUserText } from '../helpers/openai-server.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { settled } from '../helpers/settled.ts';
import { until } from '../helpers/until.ts';

async function writeFiles(root: string, files: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(root, name);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
  }
}

const wa = (bot: string, from: string, n: number, text: string): EnvelopeInput => ({
  id: `whatsapp:wamid.${bot}.${from}.${n}`,
  channel: 'whatsapp',
  bot,
  from: { id: from },
  text,
  receivedAt: new Date().toISOString(),
});

/**
 * A person's message whose text holds `failonce_<tag>` is refused by the database the first time
 * its turn is written (a sequence per tag: its count does not roll back with the refused write).
 */
async function failOnce(running: RunningHub, tag: string): Promise<string> {
  await running.hub.db.query(`CREATE SEQUENCE sbt_fail_${tag}`);
  return `failonce_${tag}`;
}

/**
 * What a turn does outside the hub before its commit is done again when the commit does not
 * happen and the turn is computed again (here: the database refuses the turn's first write, and
 * the queue hands the envelope over again). Through the whole hub on PostgreSQL.
 */
describe("a turn's effects when it is computed again (PostgreSQL)", () => {
  const fake = new FakeOpenAi();
  let toolServer: Server;
  /** The `Idempotency-Key` of each call the HTTP tool got, in order. */
  const toolKeys: (string | undefined)[] = [];
  let running: RunningHub;

  beforeAll(async () => {
    await fake.start();
    toolServer = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const key = req.headers['idempotency-key'];
        toolKeys.push(Array.isArray(key) ? key.join(',') : key);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"booked":true}');
      });
    });
    await new Promise<void>((r) => toolServer.listen(0, '127.0.0.1', r));
    const toolUrl = `http://127.0.0.1:${(toolServer.address() as AddressInfo).port}/bookings`;
    const configDir = await tempDir('sbt-turn-effects-');
    await writeFiles(path.join(configDir, 'bots'), {
      'booker/bot.json': JSON.stringify({
        llm: {
          baseUrl: fake.url,
          model: 'fake',
          maxRetries: 0,
          tools: [
            {
              name: 'book',
              description: 'Books a table',
              parameters: { type: 'object', properties: { at: { type: 'string' } } },
              http: { url: toolUrl },
            },
          ],
        },
      }),
      'booker/start.bas': 'USE TOOL "book"\n',
      'sender/start.bas': 'REM nothing to say first\n',
      'sender/message.bas': [
        'parts = SPLIT(message, " ")',
        'IF parts[0] = "send" THEN',
        '  SEND TO SESSION parts[1], "note " + parts[2]',
        '  TALK "sent"',
        'ELSE',
        '  TALK "hello"',
        'END IF',
        '',
      ].join('\n'),
    });
    // One turn at a time: each commits alone, so a refused write goes back to the queue and the
    // turn is computed again (written with another session's turn, it would be split from it and
    // written again as computed: src/engine/group-commit.ts).
    running = await startTestHub({ configDir, queueConcurrency: 1, queueRetryBaseMs: 5 });
    // The model books (twice when asked to), then answers with what it got.
    fake.handle((r) => {
      if (r.body.messages.at(-1)!.role === 'tool') return { text: 'Booked.' };
      const calls = lastUserText(r).includes('twice') ? 2 : 1;
      return {
        toolCalls: Array.from({ length: calls }, (_, i) => ({ name: 'book', arguments: { at: `${i}` } })),
      };
    });
    await running.hub.db.query(`
      CREATE FUNCTION sbt_fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE tag text := substring(NEW.content from 'failonce_([a-z0-9]+)');
      BEGIN
        IF NEW.role = 'user' AND tag IS NOT NULL AND nextval(('sbt_fail_' || tag)::regclass) = 1 THEN
          RAISE EXCEPTION 'refused once by the test';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER sbt_fail_once BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION sbt_fail_once();`);
  });
  afterAll(async () => {
    await running?.stop();
    await fake.stop();
    await new Promise((r) => toolServer?.close(r));
  });

  const historyOf = async (bot: string, from: string) => {
    const snap = await findOpenSnapshotByKey(running.hub.db, { bot, channel: 'whatsapp', nativeKey: from });
    expect(snap, `${bot}'s session of ${from}`).toBeDefined();
    return listMessages(running.hub.db, snap!.session.id, { limit: 50 });
  };

  it('an HTTP tool call made again by the recomputed turn carries the same Idempotency-Key; another turn, another key', async () => {
    const from = '+4915200001';
    const before = toolKeys.length;
    const text = `book a table ${await failOnce(running, 'table')}`;
    await running.hub.ingress.accept(wa('booker', from, 1, text));
    await until(
      () => toolKeys.length - before,
      (n) => n >= 2,
    );
    await settled(running.hub);
    const messages = await historyOf('booker', from);
    expect(messages.map((m) => [m.role, m.content])).toEqual([
      ['user', text],
      ['tool', '{"booked":true}'],
      ['assistant', 'Booked.'],
    ]);
    // The first computation's call, and the recomputed turn's: one booking to the service.
    const [first, again] = toolKeys.slice(before);
    expect(toolKeys.length - before).toBe(2);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(again).toBe(first);

    // The person's next message is another turn: another key.
    await running.hub.ingress.accept(wa('booker', from, 2, 'book another'));
    await until(
      () => toolKeys.length - before,
      (n) => n >= 3,
    );
    await settled(running.hub);
    const next = toolKeys[before + 2];
    expect(next).toMatch(/^[0-9a-f]{64}$/);
    expect(next).not.toBe(first);
  });

  it('two calls in one turn have keys of their own, each the same when the turn is computed again', async () => {
    const from = '+4915200002';
    const before = toolKeys.length;
    await running.hub.ingress.accept(wa('booker', from, 1, `book twice ${await failOnce(running, 'twice')}`));
    await until(
      () => toolKeys.length - before,
      (n) => n >= 4,
    );
    await settled(running.hub);
    const keys = toolKeys.slice(before);
    expect(keys).toHaveLength(4);
    expect(keys[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(keys[1]).toMatch(/^[0-9a-f]{64}$/);
    expect(keys[1]).not.toBe(keys[0]);
    expect(keys.slice(2)).toEqual(keys.slice(0, 2));
    const messages = await historyOf('booker', from);
    expect(messages.map((m) => m.role)).toEqual(['user', 'tool', 'tool', 'assistant']);
  });

  // Already so before the Idempotency-Key: each message a turn sends has an id made of the turn's
  // envelope id and its place in the turn (src/engine/session-control.ts), queued before the
  // commit; the recomputed turn's copy is a duplicate there.
  it('SEND TO SESSION in a turn computed again: the other session gets the message once', async () => {
    await running.hub.ingress.accept(wa('sender', '+4915200003', 1, 'hi'));
    await settled(running.hub);
    const target = await findOpenSnapshotByKey(running.hub.db, {
      bot: 'sender',
      channel: 'whatsapp',
      nativeKey: '+4915200003',
    });
    const text = `send ${target!.session.id} reminder ${await failOnce(running, 'send')}`;
    await running.hub.ingress.accept(wa('sender', '+4915200004', 1, text));
    await until(
      () =>
        running.hub.db.query(`SELECT 1 FROM messages WHERE in_reply_to = $1`, [
          `whatsapp:wamid.sender.+4915200004.1`,
        ]),
      (r) => r.rows.length >= 1,
    );
    await settled(running.hub);
    expect((await historyOf('sender', '+4915200004')).map((m) => [m.role, m.content])).toEqual([
      ['user', text],
      ['assistant', 'sent'],
    ]);
    expect((await historyOf('sender', '+4915200003')).map((m) => [m.role, m.content])).toEqual([
      ['user', 'hi'],
      ['assistant', 'hello'],
      ['assistant', 'note reminder'],
    ]);
    // The turn was computed twice: its first write was refused.
    const { rows } = await running.hub.db.query<{ n: string }>(`SELECT last_value AS n FROM sbt_fail_send`);
    expect(Number(rows[0]!.n)).toBe(2);
  });
});

/**
 * A person's message whose turn fails again and again (here: its write always refused) is set
 * aside by the queue after its 10 tries; the person gets the bot's apology once rather than
 * silence, and the set-aside is counted and logged. On the embedded queue and on Redis lanes.
 */
function setAsideScenario(name: string, redis: { prefix: string; cleanup: () => Promise<void> } | undefined) {
  describe(name, () => {
    const log = capturingLogger();
    let running: RunningHub;

    beforeAll(async () => {
      const configDir = await tempDir('sbt-set-aside-');
      await writeFiles(path.join(configDir, 'bots'), {
        'sorry/bot.json': JSON.stringify({ apology: 'Sorry, that went wrong on our side.' }),
        'sorry/start.bas': 'REM nothing to say first\n',
        'sorry/message.bas': 'TALK "fine"\n',
      });
      running = await startTestHub(
        {
          configDir,
          queueConcurrency: 2,
          queueRetryBaseMs: 5,
          ...(redis ? { redisUrl: TEST_REDIS_URL, redisPrefix: redis.prefix } : {}),
        },
        { logger: log.logger },
      );
      await running.hub.db.query(`
        CREATE FUNCTION sbt_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.role = 'user' AND NEW.content LIKE '%poison%' THEN RAISE EXCEPTION 'refused by the test'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER sbt_poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION sbt_poison();`);
    });
    afterAll(async () => {
      await running?.stop();
      await redis?.cleanup();
    });

    const setAside = async () =>
      (await running.hub.metrics.envelopesSetAside.get()).values.find(
        (v) => v.labels.channel === 'whatsapp' && v.labels.kind === 'message',
      )?.value ?? 0;
    const historyOf = async (from: string) => {
      const snap = await findOpenSnapshotByKey(running.hub.db, {
        bot: 'sorry',
        channel: 'whatsapp',
        nativeKey: from,
      });
      return snap ? listMessages(running.hub.db, snap.session.id, { limit: 50 }) : [];
    };

    it("answers a person's message set aside after its retries with the bot's apology, once, and counts it", async () => {
      const from = '+4915200101';
      await running.hub.ingress.accept(wa('sorry', from, 1, 'hello'));
      await settled(running.hub);
      const poison = wa('sorry', from, 2, 'a poison pill');
      await running.hub.ingress.accept(poison);
      await until(
        () => historyOf(from),
        (messages) => messages.length >= 3,
        45_000,
      );
      await settled(running.hub);
      const messages = await historyOf(from);
      expect(messages.map((m) => [m.role, m.content])).toEqual([
        ['user', 'hello'],
        ['assistant', 'fine'],
        ['assistant', 'Sorry, that went wrong on our side.'],
      ]);
      expect(messages[2]!.payload.origin).toEqual({ type: 'set_aside', id: poison.id });
      expect(await setAside()).toBe(1);
      expect(log.about('queue.envelope_failed', poison.id)).toEqual([
        expect.objectContaining({ attempts: 10, err: 'refused by the test' }),
      ]);
      expect(log.about('turn.set_aside_apology', poison.id)).toEqual([
        expect.objectContaining({ status: 'accepted' }),
      ]);

      // The session goes on.
      await running.hub.ingress.accept(wa('sorry', from, 3, 'still there?'));
      await settled(running.hub);
      expect((await historyOf(from)).slice(3).map((m) => [m.role, m.content])).toEqual([
        ['user', 'still there?'],
        ['assistant', 'fine'],
      ]);

      if (!redis) return;
      // An operator replays the dead letter; it is set aside again, and not apologised for again.
      expect(await (running.hub.queue as RedisLaneQueue).replayDeadLetters()).toBe(1);
      await until(setAside, (n) => n >= 2);
      await settled(running.hub);
      expect(log.about('turn.set_aside_apology', poison.id)).toEqual([
        expect.objectContaining({ status: 'accepted' }),
        expect.objectContaining({ status: 'duplicate' }),
      ]);
      expect((await historyOf(from)).map((m) => m.content)).toEqual([
        'hello',
        'fine',
        'Sorry, that went wrong on our side.',
        'still there?',
        'fine',
      ]);
    });
  });
}

setAsideScenario('a message set aside: the embedded queue (PostgreSQL)', undefined);
setAsideScenario('a message set aside: Redis lanes (PostgreSQL, Redis)', testRedisPrefix());
