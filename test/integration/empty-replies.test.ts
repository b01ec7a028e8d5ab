import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnvelopeInput } from '../../src/envelope.ts';
import { listMessages } from '../../src/store/messages.ts';
import { findOpenSnapshotByKey } from '../../src/store/sessions.ts';
import { tempDir } from '../helpers/database.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';
import { settled } from '../helpers/settled.ts';

const wa = (bot: string, from: string, n: number, text: string): EnvelopeInput => ({
  id: `whatsapp:wamid.empty.${bot}.${from}.${n}`,
  channel: 'whatsapp',
  bot,
  from: { id: from },
  text,
  receivedAt: new Date().toISOString(),
});

/**
 * `"greeting": ""` (or an empty `defaultReply`) made an empty assistant row on every new session
 * (or unanswered message), which the outbox then sent: WhatsApp, Teams and Slack refuse an empty
 * text. An empty text with no file or card is now no reply at all, as `TALK ""` in a script.
 */
describe('an empty greeting or defaultReply says nothing (PostgreSQL, embedded queue)', () => {
  let running: RunningHub;

  beforeAll(async () => {
    const configDir = await tempDir('sbt-empty-replies-');
    const bots = path.join(configDir, 'bots');
    // A bot of settings only: the hub's greeting and defaultReply.
    await fs.mkdir(path.join(bots, 'quiet'), { recursive: true });
    await fs.writeFile(
      path.join(bots, 'quiet', 'bot.json'),
      JSON.stringify({ greeting: '', defaultReply: 'Noted.' }),
    );
    // A dialog bot with neither start.bas nor message.bas: the same two settings, through the runtime.
    await fs.mkdir(path.join(bots, 'scripted'), { recursive: true });
    await fs.writeFile(
      path.join(bots, 'scripted', 'bot.json'),
      JSON.stringify({ greeting: 'Hi', defaultReply: ' ' }),
    );
    await fs.writeFile(path.join(bots, 'scripted', 'menu.bas'), 'TALK "menu"\n');
    running = await startTestHub({ configDir });
  });
  afterAll(async () => {
    await running?.stop();
  });

  const historyOf = async (bot: string, from: string) => {
    const snap = await findOpenSnapshotByKey(running.hub.db, { bot, channel: 'whatsapp', nativeKey: from });
    expect(snap, `the session of ${from} with ${bot}`).toBeDefined();
    const messages = await listMessages(running.hub.db, snap!.session.id, { limit: 20 });
    return messages.map((m) => `${m.role}:${m.content}`);
  };

  it('"greeting": "" turns the greeting off; the answer still comes', async () => {
    const from = '+4915300001';
    await running.hub.ingress.accept(wa('quiet', from, 1, 'hello'));
    await running.hub.ingress.accept(wa('quiet', from, 2, 'again'));
    await settled(running.hub);
    expect(await historyOf('quiet', from)).toEqual([
      'user:hello',
      'assistant:Noted.',
      'user:again',
      'assistant:Noted.',
    ]);
  });

  it("a dialog bot's blank defaultReply is no reply; its greeting still comes", async () => {
    const from = '+4915300002';
    await running.hub.ingress.accept(wa('scripted', from, 1, 'hello'));
    await running.hub.ingress.accept(wa('scripted', from, 2, 'again'));
    await settled(running.hub);
    expect(await historyOf('scripted', from)).toEqual(['user:hello', 'assistant:Hi', 'user:again']);
  });
});
