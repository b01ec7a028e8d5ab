import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeamsAdapter, loadTeamsConfig } from '../../adapters/teams/index.ts';
import * as doc from '../fixtures/teams/activities.ts';
import { type BotConnector, startBotConnector } from '../helpers/bot-connector.ts';
import { REPO_ROOT, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { settled } from '../helpers/settled.ts';
import { until } from '../helpers/until.ts';

const KETTLE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));

/** A bot's images and cards through the Bot Connector (a local fake), and a card's button pressed in Teams. */
describe('Teams: files and cards', () => {
  let connector: BotConnector;
  let running: RunningHub;
  let serial = 0;
  const fresh = (activity: doc.Json, text: string, conversation?: string) => {
    const a = doc.variant(activity, { suffix: `f${++serial}`, serviceUrl: connector.url });
    a.text = text;
    if (conversation) a.conversation.id = conversation;
    return a;
  };
  const post = (body: unknown) =>
    fetch(`${running.url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    connector = await startBotConnector();
    const config = loadTeamsConfig({ TEAMS_ENABLED: 'true', TEAMS_BOT: 'gallery' }, '127.0.0.1')!;
    running = await startTestHub(
      // The attachment retry's waits, short for the test (ATTACHMENT_RETRY_DELAYS_MS).
      { configDir: path.join(REPO_ROOT, 'test/fixtures/files'), attachmentRetryDelaysMs: [10, 20, 30] },
      { adapters: [createTeamsAdapter(config)] },
    );
  });
  afterAll(async () => {
    await running?.stop();
    await connector?.close();
  });

  it('a picture a person attaches (contentUrl on the Bot Connector) is stored and reaches the bot', async () => {
    connector.addFile('att-kettle', KETTLE, 'image/png');
    const first = fresh(doc.personalMessage, 'look');
    first.attachments = [
      {
        contentType: 'image/png',
        contentUrl: new URL('v3/attachments/att-kettle/views/original', connector.url).href,
        name: 'kettle.png',
      },
    ];
    await post(first);
    await until(
      () => connector.delivered(first.conversation.id),
      (r) => r.some((x) => x.body.text === `Got kettle.png (image/png, ${KETTLE.length} bytes)`),
      15_000,
    );
    const stored = await running.hub.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM files WHERE name = 'kettle.png' AND origin = 'person' AND session_id IS NOT NULL",
    );
    expect(stored.rows[0]!.n).toBe(1);
  });

  it('the activity is answered before the attachment is downloaded; the worker fetches it before the turn', async () => {
    connector.addFile('att-held', KETTLE, 'image/png');
    const release = connector.hold('att-held');
    const first = fresh(doc.personalMessage, 'slow');
    first.attachments = [
      {
        contentType: 'image/png',
        contentUrl: new URL('v3/attachments/att-held/views/original', connector.url).href,
        name: 'held.png',
      },
    ];
    // Answered while the connector still holds the bytes back.
    const res = await post(first);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'accepted' });
    await until(
      () => connector.waiting,
      (w) => w.includes('att-held'),
    );
    expect(connector.delivered(first.conversation.id)).toEqual([]);
    release();
    await until(
      () => connector.delivered(first.conversation.id),
      (r) => r.some((x) => x.body.text === `Got held.png (image/png, ${KETTLE.length} bytes)`),
    );
  });

  /** An activity with `text` carrying hosted file `id` as `name`. */
  const withFile = (text: string, id: string, name: string) => {
    const activity = fresh(doc.personalMessage, text);
    activity.attachments = [
      {
        contentType: 'image/png',
        contentUrl: new URL(`v3/attachments/${id}/views/original`, connector.url).href,
        name,
      },
    ];
    return activity;
  };
  const textsIn = (conversation: string) =>
    connector.delivered(conversation).map((r) => r.body.text as string | undefined);
  const downloadsOf = (id: string) => connector.fileRequests.filter((r) => r.id === id).map((r) => r.status);
  const unavailable = (name: string) =>
    `"${name}" could not be fetched from the chat service; please send it again`;

  it('a download the connector fails for now (503 twice) is tried again; then the file arrives', async () => {
    const bytes = Buffer.concat([KETTLE, Buffer.from('teams-flaky')]);
    connector.addFile('att-flaky', bytes, 'image/png');
    connector.failFile('att-flaky', 2, 503);
    const activity = withFile('flaky', 'att-flaky', 'flaky.png');
    await post(activity);
    await until(
      () => textsIn(activity.conversation.id),
      (t) => t.includes(`Got flaky.png (image/png, ${bytes.length} bytes)`),
    );
    expect(downloadsOf('att-flaky')).toEqual([503, 503, 200]);
    expect(textsIn(activity.conversation.id)).not.toContain(unavailable('flaky.png'));
  });

  it('a download that fails every time (500) is tried 1 + ATTACHMENT_RETRY_ATTEMPTS times, then the person is told', async () => {
    connector.addFile('att-down', KETTLE, 'image/png');
    connector.failFile('att-down', Number.POSITIVE_INFINITY, 500);
    const activity = withFile('down', 'att-down', 'down.png');
    await post(activity);
    await until(
      () => textsIn(activity.conversation.id),
      (t) => t.includes(unavailable('down.png')),
    );
    await settled(running.hub);
    expect(downloadsOf('att-down')).toHaveLength(1 + running.hub.config.attachmentRetryAttempts);
  });

  it('a file the connector no longer has (404) is told at once, with no retry', async () => {
    connector.addFile('att-gone', KETTLE, 'image/png');
    connector.failFile('att-gone', Number.POSITIVE_INFINITY, 404);
    const activity = withFile('gone', 'att-gone', 'gone.png');
    await post(activity);
    await until(
      () => textsIn(activity.conversation.id),
      (t) => t.includes(unavailable('gone.png')),
    );
    await settled(running.hub);
    expect(downloadsOf('att-gone')).toEqual([404]);
  });

  it('SHOW IMAGE reaches the Bot Connector as an image attachment whose link serves the bytes', async () => {
    const first = fresh(doc.personalMessage, 'image');
    await post(first);
    const sent = await until(
      () => connector.delivered(first.conversation.id),
      (r) => r.some((x) => x.body.attachments?.length),
    );
    const image = sent.find((x) => x.body.attachments?.length)!.body.attachments[0];
    expect(image).toMatchObject({ contentType: 'image/png', name: 'kettle.png' });
    expect(image.contentUrl).toMatch(/\/api\/files\/[0-9a-f-]{36}\?exp=\d+&sig=/);
    const res = await fetch(new URL(image.contentUrl, running.url));
    expect(Buffer.from(await res.arrayBuffer()).equals(KETTLE)).toBe(true);
  });

  it('a card is an Adaptive Card; its button (messageBack) comes back as the value', async () => {
    const first = fresh(doc.personalMessage, 'card');
    await post(first);
    const sent = await until(
      () => connector.delivered(first.conversation.id),
      (r) =>
        r.some((x) => x.body.attachments?.[0]?.contentType === 'application/vnd.microsoft.card.adaptive'),
    );
    const card = sent.find((x) => x.body.attachments?.length)!.body.attachments[0].content;
    expect(card.body.map((b: doc.Json) => b.type)).toEqual(['Image', 'TextBlock', 'TextBlock']);
    expect(card.body[1].text).toBe('Kettle K-200');
    expect(card.actions).toEqual([
      {
        type: 'Action.Submit',
        title: 'Buy it',
        data: {
          msteams: { type: 'messageBack', text: 'buy k200', displayText: 'Buy it' },
          value: 'buy k200',
        },
      },
      { type: 'Action.OpenUrl', title: 'Manual', url: 'https://example.com/k200' },
    ]);
    // What Teams sends when the button is pressed: a message whose text is the messageBack text.
    const press = fresh(doc.personalMessage, 'buy k200', first.conversation.id);
    press.value = { value: 'buy k200' };
    await post(press);
    await until(
      () => connector.delivered(first.conversation.id),
      (r) => r.some((x) => x.body.text === 'You said: buy k200'),
    );
  });

  it("a card's Action.Execute press (an invoke) is answered with the invoke response and comes back as the value", async () => {
    const first = fresh(doc.personalMessage, 'hello');
    await post(first);
    await until(
      () => connector.delivered(first.conversation.id),
      (r) => r.some((x) => x.body.text === 'You said: hello'),
    );
    const press = doc.variant(doc.cardActionInvoke, { suffix: `f${++serial}`, serviceUrl: connector.url });
    press.conversation.id = first.conversation.id;
    press.from = first.from;
    const answer = await post(press);
    // What Bot Framework expects of an adaptiveCard/action invoke: HTTP 200 and an
    // AdaptiveCardInvokeResponse body.
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await answer.json()).toEqual({
      statusCode: 200,
      type: 'application/vnd.microsoft.activity.message',
      value: 'Received.',
    });
    const replies = await until(
      () => connector.delivered(first.conversation.id),
      (r) => r.some((x) => x.body.text === 'You said: buy k200'),
    );
    // The answer threads under the invoke, as botbuilder replies in an invoke's turn.
    expect(replies.find((x) => x.body.text === 'You said: buy k200')!.replyToId).toBe(press.id);
    // Teams retries an invoke it got no answer to: the same answer, no second reply.
    const retry = await post(press);
    expect(retry.status).toBe(200);
    expect(await retry.json()).toMatchObject({ statusCode: 200 });
    const more = fresh(doc.personalMessage, 'after', first.conversation.id);
    await post(more);
    const all = await until(
      () => connector.delivered(first.conversation.id),
      (r) => r.some((x) => x.body.text === 'You said: after'),
    );
    expect(all.filter((x) => x.body.text === 'You said: buy k200')).toHaveLength(1);
  });
});
