import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiAdapter } from '../../adapters/api/index.ts';
import { createHub, type Hub } from '../../src/hub.ts';
import type { Db } from '../../src/store/db.ts';
import { listMessages } from '../../src/store/messages.ts';
import { personRepliesTo } from '../../src/store/person-history.ts';
import { createSession, loadSnapshot } from '../../src/store/sessions.ts';
import { commitTurn, commitTurnBatch, type TurnWrite } from '../../src/store/turns.ts';
import { type Backend, silentLogger, tempDir, useTestDb } from '../helpers/database.ts';
import { apiClient, testConfig } from '../helpers/hub.ts';
import { FakeOpenAi } from '../helpers/openai-server.ts';

/** A turn that asked a tool: the tool's row sits between the inbound message and the answer. */
function toolTurn(sessionId: string, summaryText: string): TurnWrite {
  const envelopeId = `api:${randomUUID()}`;
  return {
    sessionId,
    at: new Date(),
    bot: 'shop',
    channel: 'api',
    expectedVersion: 0,
    state: {
      variables: {},
      context: {},
      kbs: ['faq'],
      tools: ['order_status'],
      suggestions: [],
      dialog: null,
      summary: { text: summaryText, throughSeq: 0, updatedAt: new Date().toISOString() },
    },
    inbound: { seq: 1, role: 'user', content: 'Where is A-1?', envelopeId, payload: {} },
    notes: [
      {
        seq: 2,
        role: 'tool',
        content: 'A-1 shipped',
        payload: { tool: 'order_status', callId: 'c1', arguments: '{"order":"A-1"}' },
      },
    ],
    replies: [{ seq: 3, content: 'It shipped.', payload: {}, deliveryStatus: 'queued' }],
    lastSeq: 3,
    messageCountDelta: 1,
    replyTo: null,
    expiresAt: null,
    memory: [],
    events: [],
  };
}

describe.each<Backend>(['postgres', 'pglite'])(
  'turn commits with tool rows and a summary on %s',
  (backend) => {
    let db: Db;
    useTestDb(backend, (opened) => {
      db = opened;
    });

    const newSession = async () =>
      (await createSession(db, { bot: 'shop', channel: 'api' })).snapshot.session.id;

    const check = async (sessionId: string, summaryText: string, envelopeId: string) => {
      const rows = await listMessages(db, sessionId, { limit: 10 });
      expect(rows.map((r) => [r.seq, r.role, r.content, r.deliveryStatus])).toEqual([
        [1, 'user', 'Where is A-1?', 'received'],
        [2, 'tool', 'A-1 shipped', 'received'],
        [3, 'assistant', 'It shipped.', 'queued'],
      ]);
      expect(rows[1]!.payload).toEqual({ tool: 'order_status', callId: 'c1', arguments: '{"order":"A-1"}' });
      expect(rows[1]!.inReplyTo).toBe(envelopeId);
      // A tool row is history, not a reply.
      expect((await personRepliesTo(db, envelopeId)).map((r) => r.content)).toEqual(['It shipped.']);
      const snapshot = await loadSnapshot(db, sessionId);
      expect(snapshot!.state.summary).toMatchObject({ text: summaryText, throughSeq: 0 });
      expect(snapshot!.session.lastSeq).toBe(3);
    };

    it('commits one turn alone', async () => {
      const id = await newSession();
      const t = toolTurn(id, 'alone');
      expect(await commitTurn(db, t)).toBe('committed');
      await check(id, 'alone', t.inbound.envelopeId);
    });

    it('commits turns together (group commit)', async () => {
      const ids = [await newSession(), await newSession(), await newSession()];
      const turns = ids.map((id, i) => toolTurn(id, `batch ${i}`));
      expect(await commitTurnBatch(db, turns)).toEqual(['committed', 'committed', 'committed']);
      for (const [i, id] of ids.entries()) await check(id, `batch ${i}`, turns[i]!.inbound.envelopeId);
    });

    it('leaves states without a summary as they were', async () => {
      const id = await newSession();
      const snapshot = await loadSnapshot(db, id);
      expect('summary' in snapshot!.state).toBe(false);
    });
  },
);

describe('an LLM bot with a knowledge base on the embedded PGlite', () => {
  const fake = new FakeOpenAi();
  let hub: Hub;
  let dir: string;
  let url: string;

  beforeAll(async () => {
    await fake.start();
    dir = await tempDir('sbt-llm-pglite-');
    const bot = path.join(dir, 'config/bots/default');
    await fs.mkdir(path.join(bot, 'kb/manual'), { recursive: true });
    await fs.writeFile(
      path.join(bot, 'bot.json'),
      JSON.stringify({ llm: { baseUrl: fake.url, model: 'm', systemPrompt: 'You know kettles.' } }),
    );
    await fs.writeFile(path.join(bot, 'start.bas'), 'USE KB "manual"\n');
    await fs.writeFile(
      path.join(bot, 'kb/manual/descaling.md'),
      '# Descaling\n\nDescale the kettle every month with citric acid.\n',
    );
    await fs.writeFile(
      path.join(bot, 'kb/manual/colours.md'),
      '# Colours\n\nThe kettle comes in red and black.\n',
    );
    hub = await createHub({
      config: testConfig({
        configDir: path.join(dir, 'config'),
        dataDir: path.join(dir, 'data'),
        databaseUrl: undefined,
      }),
      logger: silentLogger,
      adapters: [createApiAdapter()],
    });
    url = `http://127.0.0.1:${(await hub.start()).port}`;
  });
  afterAll(async () => {
    await hub?.stop();
    await fake.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('indexes at start and answers with the matching chunk', async () => {
    expect(hub.db.kind).toBe('pglite');
    const api = apiClient(url);
    const s = await api.createSession();
    const res = await api.chat(s.token, 'How often should I descale it?');
    expect(res.json.replies.map((r: { text: string }) => r.text)).toEqual([
      'echo: How often should I descale it?',
    ]);
    const system = fake.requests.at(-1)!.body.messages[0]!.content!;
    expect(system).toContain('[source: descaling.md]\n# Descaling');
    expect(system).not.toContain('colours.md');
  });
});
