import { WebAPIHTTPError, WebAPIPlatformError, WebAPIRateLimitedError } from '@slack/web-api';
import { describe, expect, it } from 'vitest';
import { normalizeSlackUser, slack } from '../../adapters/slack/channel.ts';
import { loadSlackConfig } from '../../adapters/slack/config.ts';
import { toSendError } from '../../adapters/slack/errors.ts';
import { EMPTY_TEXT_PROMPT, escapeText, planReply, TEXT_MAX } from '../../adapters/slack/outbound.ts';
import { buttonToEnvelope, messageToEnvelope } from '../../adapters/slack/webhook/envelope.ts';
import {
  NotASlackRequestError,
  parseEventRequest,
  parseInteraction,
} from '../../adapters/slack/webhook/parse.ts';
import { slackSignature, verifySlackSignature } from '../../adapters/slack/webhook/verify.ts';
import { EnvelopeSchema, MAX_ATTACHMENT_NAME } from '../../src/envelope.ts';
import * as doc from '../fixtures/slack/events.ts';
import { silentLogger } from '../helpers/database.ts';
import { testConfig } from '../helpers/hub.ts';

const messageOf = (body: unknown) => {
  const parsed = parseEventRequest(body);
  if (parsed.kind !== 'message') throw new Error(`expected a message, got ${JSON.stringify(parsed)}`);
  return parsed.message;
};

describe('Slack request signatures (v0)', () => {
  const ex = doc.signingExample;
  const at = (seconds: number) => new Date((Number(ex.timestamp) + seconds) * 1000);

  it("the documentation's worked example verifies", () => {
    expect(slackSignature(ex.body, ex.timestamp, ex.signingSecret)).toBe(ex.signature);
    expect(
      verifySlackSignature({
        rawBody: ex.body,
        timestamp: ex.timestamp,
        signature: ex.signature,
        signingSecret: ex.signingSecret,
        now: at(10),
      }),
    ).toEqual({ ok: true });
  });

  it('a changed body, timestamp, secret or signature is refused', () => {
    const check = (o: Partial<Parameters<typeof verifySlackSignature>[0]>) =>
      verifySlackSignature({
        rawBody: ex.body,
        timestamp: ex.timestamp,
        signature: ex.signature,
        signingSecret: ex.signingSecret,
        now: at(0),
        ...o,
      }).ok;
    expect(check({ rawBody: `${ex.body}&x=1` })).toBe(false);
    expect(check({ timestamp: String(Number(ex.timestamp) + 1) })).toBe(false);
    expect(check({ signingSecret: 'another-secret-1234' })).toBe(false);
    expect(check({ signature: `v0=${'0'.repeat(64)}` })).toBe(false);
    expect(check({ signature: ex.signature.replace('v0=', 'v1=') })).toBe(false);
    expect(check({ signature: undefined })).toBe(false);
    expect(check({ timestamp: undefined })).toBe(false);
    expect(check({ signature: ex.signature.toUpperCase().replace('V0=', 'v0=') })).toBe(true);
  });

  it('the replay window is five minutes either way', () => {
    const check = (now: Date) =>
      verifySlackSignature({
        rawBody: ex.body,
        timestamp: ex.timestamp,
        signature: ex.signature,
        signingSecret: ex.signingSecret,
        now,
      });
    expect(check(at(300)).ok).toBe(true);
    expect(check(at(-300)).ok).toBe(true);
    expect(check(at(301))).toEqual({
      ok: false,
      reason: 'X-Slack-Request-Timestamp is more than five minutes from now',
    });
    expect(check(at(-301)).ok).toBe(false);
  });
});

describe('Slack Events API: reading documented requests', () => {
  it('url_verification gives the challenge back', () => {
    expect(parseEventRequest(doc.urlVerification)).toEqual({
      kind: 'url_verification',
      challenge: '3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P',
    });
  });

  it('a direct message is a conversation with the person', () => {
    expect(messageOf(doc.wrap(doc.directMessage))).toEqual({
      teamId: 'T123ABC456',
      eventId: 'Ev123ABC456',
      eventType: 'message',
      channel: 'D024BE91L',
      channelType: 'im',
      user: 'U2147483697',
      text: 'Hello hello can you hear me?',
      ts: '1355517523.000005',
      attachments: [],
      conversation: 'direct',
    });
  });

  it("an app_mention is a mention, with the bot's own mention taken out of the text", () => {
    expect(messageOf(doc.wrap(doc.appMention))).toMatchObject({
      eventType: 'app_mention',
      channel: 'C123ABC456',
      user: 'U061F7AUR',
      text: 'is it everything a river should be?',
      ts: '1515449522.000016',
      conversation: 'mention',
    });
  });

  it('the message twin of a mention is the same message; a channel message without a mention is ignored', () => {
    const twin = { ...doc.channelMessage, text: '<@U0LAN0Z89> is it everything a river should be?' };
    expect(messageOf(doc.wrap(twin, { eventId: 'Ev999' }))).toMatchObject({
      conversation: 'mention',
      eventType: 'message',
    });
    expect(parseEventRequest(doc.wrap(doc.channelMessage))).toEqual({
      kind: 'ignored',
      reason: 'a channel message that does not mention the bot',
      eventId: 'Ev123ABC456',
    });
  });

  it("bots are never answered: a bot_id, the bot_message subtype, the bot's own user", () => {
    expect(
      parseEventRequest(doc.wrap({ ...doc.botMessage, channel: 'D024BE91L', channel_type: 'im' })),
    ).toMatchObject({
      kind: 'ignored',
      reason: 'sent by a bot',
    });
    expect(parseEventRequest(doc.wrap({ ...doc.directMessage, bot_id: 'B0BOT' }))).toMatchObject({
      reason: 'sent by a bot',
    });
    expect(parseEventRequest(doc.wrap({ ...doc.directMessage, user: 'U0LAN0Z89' }))).toMatchObject({
      reason: "the bot's own message",
    });
  });

  it('edits and other event types are acknowledged and not acted on', () => {
    expect(parseEventRequest(doc.wrap(doc.messageChanged))).toMatchObject({
      kind: 'ignored',
      reason: 'message_changed messages are not conversations',
    });
    expect(
      parseEventRequest(doc.wrap({ type: 'reaction_added', user: 'U1', reaction: 'thumbsup' })),
    ).toMatchObject({
      reason: 'reaction_added events are not handled',
    });
    expect(
      parseEventRequest({ type: 'app_rate_limited', team_id: 'T1', minute_rate_limited: 1518467820 }),
    ).toMatchObject({
      kind: 'ignored',
    });
    expect(() => parseEventRequest({ hello: 'world' })).toThrow(NotASlackRequestError);
  });
});

describe('Slack envelopes', () => {
  const now = new Date('2024-01-01T00:00:00Z');

  it('a direct message: the person is team + user, the id the conversation + ts; answered in the conversation', () => {
    expect(messageToEnvelope(messageOf(doc.wrap(doc.directMessage)), 'default', now)).toEqual({
      id: 'slack:T123ABC456:D024BE91L:1355517523.000005',
      channel: 'slack',
      bot: 'default',
      from: { id: 'T123ABC456:U2147483697', tenant: 'T123ABC456' },
      text: 'Hello hello can you hear me?',
      attachments: [],
      replyTo: { teamId: 'T123ABC456', channel: 'D024BE91L' },
      meta: {
        conversation: 'direct',
        eventType: 'message',
        eventId: 'Ev123ABC456',
        channelId: 'D024BE91L',
        channelType: 'im',
        ts: '1355517523.000005',
        userId: 'U2147483697',
        teamId: 'T123ABC456',
      },
      receivedAt: '2024-01-01T00:00:00.000Z',
    });
  });

  it('a file whose name is over the envelope limit: the message keeps its text, the name is cut', () => {
    const name = `${'n'.repeat(596)}.pdf`;
    const file = { ...doc.fileShare.files[0]!, name, title: name };
    const shared = messageToEnvelope(
      messageOf(doc.wrap({ ...doc.fileShare, files: [file] })),
      'default',
      now,
    );
    const envelope = EnvelopeSchema.parse(shared);
    expect(envelope.text).toBe('Here is the invoice');
    expect(envelope.attachments).toMatchObject([
      { type: 'application/pdf', ref: 'F0S43PZDF', name: name.slice(0, MAX_ATTACHMENT_NAME) },
    ]);
  });

  it('a mention: a session per thread, the mention starting the thread; its message twin has the same id', () => {
    const mention = messageToEnvelope(messageOf(doc.wrap(doc.appMention)), 'default', now);
    expect(mention).toMatchObject({
      id: 'slack:T123ABC456:C123ABC456:1515449522.000016',
      from: { id: 'T123ABC456:U061F7AUR' },
      thread: 'C123ABC456:1515449522.000016',
      replyTo: { channel: 'C123ABC456', threadTs: '1515449522.000016' },
    });
    const twin = { ...doc.appMention, type: 'message', channel_type: 'channel', event_ts: doc.appMention.ts };
    expect(messageToEnvelope(messageOf(doc.wrap(twin, { eventId: 'Ev0TWIN' })), 'default', now).id).toBe(
      mention.id,
    );
    const inThread = { ...doc.appMention, ts: '1515449600.000100', thread_ts: '1515449522.000016' };
    expect(messageToEnvelope(messageOf(doc.wrap(inThread)), 'default', now)).toMatchObject({
      thread: 'C123ABC456:1515449522.000016',
      replyTo: { threadTs: '1515449522.000016' },
    });
  });

  it("a button press: the button's value, in the conversation of its message", () => {
    const parsed = parseInteraction(doc.interactionBody(doc.blockActions));
    expect(parsed).toMatchObject({ kind: 'button' });
    if (parsed.kind !== 'button') return;
    expect(buttonToEnvelope(parsed.press, 'default', now)).toMatchObject({
      id: 'slack:T9TK3CUKW:CBR2V3XEX:1548261231.000200:WaXA:1548426417.840180',
      from: { id: 'T9TK3CUKW:UA8RXUSPL', name: 'jtorrance' },
      thread: 'CBR2V3XEX:1548261231.000200',
      text: 'click_me_123',
      replyTo: { teamId: 'T9TK3CUKW', channel: 'CBR2V3XEX', threadTs: '1548261231.000200' },
    });
    const direct = structuredClone(doc.blockActions) as doc.Json;
    direct.channel = { id: 'D024BE91L', name: 'directmessage' };
    direct.container.channel_id = 'D024BE91L';
    const dm = parseInteraction(doc.interactionBody(direct));
    if (dm.kind !== 'button') throw new Error('button expected');
    const envelope = buttonToEnvelope(dm.press, 'default', now);
    expect(envelope.thread).toBeUndefined();
    expect(envelope.replyTo).toEqual({ teamId: 'T9TK3CUKW', channel: 'D024BE91L' });
  });

  it('other interactions are ignored; a body without payload is refused', () => {
    expect(parseInteraction(doc.interactionBody({ type: 'view_submission', team: { id: 'T1' } }))).toEqual({
      kind: 'ignored',
      reason: 'view_submission interactions are not handled',
    });
    expect(() => parseInteraction('foo=bar')).toThrow(NotASlackRequestError);
    expect(() => parseInteraction('payload=%7Bnot-json')).toThrow(NotASlackRequestError);
  });
});

describe('Slack replies', () => {
  const to = { teamId: 'T1', channel: 'C123ABC456', threadTs: '1515449522.000016' };
  const reply = (text: string, suggestions?: { text: string; value?: string }[]) => ({
    seq: 1,
    text,
    payload: suggestions ? { suggestions } : {},
  });

  it('suggestions are Block Kit buttons whose value is the suggestion value, in the thread', () => {
    const { calls } = planReply(
      reply('Which size?', [{ text: 'Small', value: 'size:s' }, { text: 'Large' }]),
      to,
    );
    expect(calls).toEqual([
      {
        channel: 'C123ABC456',
        thread_ts: '1515449522.000016',
        text: 'Which size?',
        unfurl_links: false,
        unfurl_media: false,
        blocks: [
          { type: 'section', text: { type: 'mrkdwn', text: 'Which size?' } },
          {
            type: 'actions',
            block_id: 'suggestions',
            elements: [
              {
                type: 'button',
                action_id: 'suggestion-0',
                text: { type: 'plain_text', text: 'Small', emoji: true },
                value: 'size:s',
              },
              {
                type: 'button',
                action_id: 'suggestion-1',
                text: { type: 'plain_text', text: 'Large', emoji: true },
                value: 'Large',
              },
            ],
          },
        ],
      },
    ]);
  });

  it("the bot's text stays text: no <!channel>, no mentions, no links", () => {
    expect(escapeText('<!channel> & <@U1|x> <https://a.b|c>')).toBe(
      '&lt;!channel&gt; &amp; &lt;@U1|x&gt; &lt;https://a.b|c&gt;',
    );
    expect(planReply(reply('<!here> hi'), to).calls[0]!.text).toBe('&lt;!here&gt; hi');
  });

  it('long text in pieces under the section limit, buttons on the last; no text gets a prompt; 25 buttons at most', () => {
    const text = `${'word '.repeat(1500)}end`;
    const many = Array.from({ length: 30 }, (_, i) => ({ text: `option ${i}` }));
    const plan = planReply(reply(text, many), { teamId: 'T1', channel: 'D1' });
    expect(plan.calls.length).toBe(3);
    expect(plan.calls.every((c) => c.text.length <= TEXT_MAX && c.thread_ts === undefined)).toBe(true);
    expect(plan.calls.map((c) => c.text).join('')).toBe(text);
    expect(plan.calls.slice(0, 2).every((c) => c.blocks === undefined)).toBe(true);
    expect((plan.calls[2]!.blocks![1] as { elements: unknown[] }).elements).toHaveLength(25);
    expect(plan.droppedSuggestions).toBe(5);
    expect(planReply(reply('', [{ text: 'OK' }]), to).calls[0]!.text).toBe(EMPTY_TEXT_PROMPT);
  });

  it("rate limits wait Slack's Retry-After; refusals are final; outages are retried", () => {
    const limited = toSendError(new WebAPIRateLimitedError(3), []);
    expect([limited.retryable, limited.retryAfterMs]).toEqual([true, 3000]);
    const notIn = toSendError(new WebAPIPlatformError({ ok: false, error: 'not_in_channel' }), []);
    expect([notIn.retryable, notIn.message]).toEqual([false, 'Slack error not_in_channel']);
    expect(toSendError(new WebAPIPlatformError({ ok: false, error: 'internal_error' }), []).retryable).toBe(
      true,
    );
    expect(toSendError(new WebAPIHTTPError(503, 'Service Unavailable', {}), []).retryable).toBe(true);
    expect(toSendError(new WebAPIHTTPError(400, 'Bad Request', {}), []).retryable).toBe(false);
  });
});

describe('Slack configuration', () => {
  it('is off without its variables, needs both secrets, and ends the API URL with a slash', () => {
    expect(loadSlackConfig({})).toBeUndefined();
    expect(() => loadSlackConfig({ SLACK_BOT_TOKEN: 'xoxb-1-2-abc' })).toThrow(/needs SLACK_SIGNING_SECRET/);
    expect(() =>
      loadSlackConfig({ SLACK_SIGNING_SECRET: '8f742231b10e8888abcd99yyyzzz85a5', SLACK_BOT_TOKEN: 'nope' }),
    ).toThrow(/SLACK_BOT_TOKEN: a bot token starts with xoxb-/);
    expect(
      loadSlackConfig({
        SLACK_SIGNING_SECRET: '8f742231b10e8888abcd99yyyzzz85a5',
        SLACK_BOT_TOKEN: 'xoxb-1-2-abc',
      }),
    ).toEqual({
      signingSecret: '8f742231b10e8888abcd99yyyzzz85a5',
      botToken: 'xoxb-1-2-abc',
      apiUrl: 'https://slack.com/api/',
      bot: 'default',
      requestTimeoutMs: 15_000,
    });
  });
});

describe('Slack ids', () => {
  it('are team + user, upper case', () => {
    expect(normalizeSlackUser(' t123abc456:u061f7aur ')).toBe('T123ABC456:U061F7AUR');
    expect(normalizeSlackUser('E0ENTERPRISE:W0GLOBALUSER')).toBe('E0ENTERPRISE:W0GLOBALUSER');
    expect(() => normalizeSlackUser('U061F7AUR')).toThrow(/not a Slack user/);
    expect(() => normalizeSlackUser('T1:C123ABC456')).toThrow(/not a Slack user/);
  });
});

describe('Slack registration', () => {
  it('is on when its variables are set, and loadAdapter builds the adapter from them', async () => {
    expect(slack.enabled({})).toBe(false);
    const env = { SLACK_SIGNING_SECRET: '8f742231b10e8888abcd99yyyzzz85a5', SLACK_BOT_TOKEN: 'xoxb-1-2-abc' };
    expect(slack.enabled(env)).toBe(true);
    const adapter = await slack.loadAdapter({ config: testConfig(), env, logger: silentLogger });
    expect(adapter?.channel).toBe('slack');
    expect(adapter?.sender).toBeDefined();
  });
});
