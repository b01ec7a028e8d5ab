import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, type RunningHub, startTestHub } from '../helpers/hub.ts';
import { until } from '../helpers/until.ts';
import { startWithReceiver, WebhookReceiver, webhookConfigDir } from '../helpers/webhook-receiver.ts';

/** ASK RATING's answer is a session event and the event webhook `rating.received`. */
describe('rating.received event webhook', () => {
  const receiver = new WebhookReceiver();
  let running: RunningHub;

  beforeAll(async () => {
    running = await startWithReceiver(receiver, async (url) =>
      startTestHub({
        configDir: await webhookConfigDir(url, { 'message.bas': 'ASK RATING\nTALK "Thanks"' }, [
          'rating.received',
        ]),
        webhookPollMs: 50,
      }),
    );
  });
  afterAll(() => running?.stop());

  it('sends the score a person gave, signed, for the session it was given in', async () => {
    const api = apiClient(running.url);
    const session = await api.createSession('hooks');
    const asked = await api.chat(session.token, 'bye');
    expect(asked.status).toBe(200);
    expect((await api.chat(session.token, '5')).status).toBe(200);
    const events = await until(
      () => receiver.bySession().get(session.session_id) ?? [],
      (e) => e.length >= 1,
    );
    expect(receiver.badSignatures).toBe(0);
    expect(receiver.badShapes).toEqual([]);
    expect(events.map((e) => e.type)).toEqual(['rating.received']);
    expect(events[0]).toMatchObject({
      bot: 'hooks',
      session_id: session.session_id,
      data: { channel: 'api', score: 5 },
    });
  });
});
