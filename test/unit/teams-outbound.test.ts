import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_TEXT_CHARS, loadTeamsConfig, teamsRequested } from '../../adapters/teams/config.ts';
import { isLoopbackHost, isLoopbackUrl } from '../../adapters/teams/loopback.ts';
import { retryAfter, toSendError } from '../../adapters/teams/outbound/errors.ts';
import { ADAPTIVE_CARD_TYPE, planReply } from '../../adapters/teams/outbound/plan.ts';
import { ConfigError } from '../../src/config/env.ts';
import type { OutboundReply } from '../../src/delivery/sender.ts';
import { splitText } from '../../src/text.ts';

const reply = (text: string, payload: OutboundReply['payload'] = {}): OutboundReply => ({
  seq: 2,
  text,
  payload,
});
const personal = { conversationType: 'personal', maxTextChars: DEFAULT_MAX_TEXT_CHARS };
const channel = { conversationType: 'channel', maxTextChars: DEFAULT_MAX_TEXT_CHARS };
/** The HOST of a hub that only this machine can reach. */
const LOCAL = '127.0.0.1';
const three = [{ text: 'Small', value: 'size:s' }, { text: 'Medium', value: 'size:m' }, { text: 'Large' }];

describe('Teams replies → activities', () => {
  it('a text is one message', () => {
    expect(planReply(reply('Hello'), personal)).toEqual([{ type: 'message', text: 'Hello' }]);
  });

  it('up to three suggestions in a 1:1 chat are imBack suggested actions on the message', () => {
    expect(planReply(reply('Which size?', { suggestions: three }), personal)).toEqual([
      {
        type: 'message',
        text: 'Which size?',
        suggestedActions: {
          to: [],
          actions: [
            { type: 'imBack', title: 'Small', value: 'size:s' },
            { type: 'imBack', title: 'Medium', value: 'size:m' },
            { type: 'imBack', title: 'Large', value: 'Large' },
          ],
        },
      },
    ]);
  });

  it('in a channel or group chat, or with more than three, the text and buttons are an Adaptive Card', () => {
    for (const [options, suggestions] of [
      [channel, three],
      [{ ...channel, conversationType: 'groupChat' }, three],
      [personal, [...three, { text: 'XL' }]],
    ] as const) {
      const [card, ...rest] = planReply(reply('Which size?', { suggestions: [...suggestions] }), options);
      expect(rest).toEqual([]);
      expect(card!.text).toBeUndefined();
      expect(card!.attachments).toHaveLength(1);
      const { contentType, content } = card!.attachments![0]!;
      expect(contentType).toBe(ADAPTIVE_CARD_TYPE);
      expect(content.type).toBe('AdaptiveCard');
      expect(content.body).toEqual([{ type: 'TextBlock', text: 'Which size?', wrap: true }]);
      expect(content.actions).toHaveLength(suggestions.length);
      expect(content.actions[2]).toEqual({
        type: 'Action.Submit',
        title: 'Large',
        data: { msteams: { type: 'messageBack', text: 'Large', displayText: 'Large' } },
      });
    }
  });

  it('a long text is split at the limit; suggestions ride on the last piece', () => {
    const text = `${'a'.repeat(150)} ${'b'.repeat(150)} ${'c'.repeat(40)}`;
    const plan = planReply(reply(text, { suggestions: three }), { ...personal, maxTextChars: 200 });
    expect(plan.map((a) => a.text)).toEqual([`${'a'.repeat(150)} `, `${'b'.repeat(150)} ${'c'.repeat(40)}`]);
    expect(plan[0]!.suggestedActions).toBeUndefined();
    expect(plan[1]!.suggestedActions?.actions).toHaveLength(3);
  });

  it('attachments with a URL follow the text, one message each; suggestions then come as a card', () => {
    const plan = planReply(
      reply('Here it is', {
        attachments: [
          { type: 'image/png', url: 'https://example.com/a.png', name: 'a.png' },
          { type: 'document', url: 'https://example.com/b.pdf' },
          { type: 'location', data: { lat: 1 } },
        ],
        suggestions: three,
      }),
      channel,
    );
    expect(plan.slice(0, 3)).toEqual([
      { type: 'message', text: 'Here it is' },
      {
        type: 'message',
        attachments: [{ contentType: 'image/png', contentUrl: 'https://example.com/a.png', name: 'a.png' }],
      },
      {
        type: 'message',
        attachments: [{ contentType: 'application/octet-stream', contentUrl: 'https://example.com/b.pdf' }],
      },
    ]);
    expect(plan).toHaveLength(4);
    expect(plan[3]!.attachments![0]!.content.body).toEqual([]);
  });

  it('splitText never cuts a surrogate pair and loses nothing', () => {
    const text = `${'x'.repeat(9)}😀${'y'.repeat(20)}`;
    const pieces = splitText(text, 10);
    expect(pieces.join('')).toBe(text);
    expect(pieces[0]).toBe('x'.repeat(9));
    expect(pieces.every((p) => p.length <= 10)).toBe(true);
    expect(splitText('', 10)).toEqual([]);
  });
});

describe('Bot Connector failures → SendError', () => {
  const failure = (statusCode: number | undefined, headers: Record<string, string> = {}, code?: string) =>
    Object.assign(new Error('the connector said no'), {
      statusCode,
      code,
      response: { headers: { get: (name: string) => headers[name] } },
    });

  it('429 is retried after its Retry-After (seconds or a date)', () => {
    const now = Date.parse('2024-05-01T12:00:00Z');
    const seconds = toSendError(failure(429, { 'retry-after': '7' }, 'TooManyRequests'), [], now);
    expect(seconds).toMatchObject({ retryable: true, retryAfterMs: 7000 });
    expect(seconds.message).toMatch(/^Bot Connector 429 TooManyRequests: /);
    const date = toSendError(failure(429, { 'retry-after': 'Wed, 01 May 2024 12:00:30 GMT' }), [], now);
    expect(date.retryAfterMs).toBe(30_000);
    expect(toSendError(failure(429), [], now)).toMatchObject({ retryable: true, retryAfterMs: undefined });
    expect(retryAfter(failure(429, { 'retry-after-ms': '250' }))).toBe(250);
  });

  it('outages are retried; refusals are not', () => {
    for (const status of [500, 502, 503, 504, 408, undefined])
      expect(toSendError(failure(status), []).retryable).toBe(true);
    for (const status of [400, 401, 403, 404, 413])
      expect(toSendError(failure(status), []).retryable).toBe(false);
    expect(toSendError(new Error('connect ECONNREFUSED'), []).message).toMatch(/^Bot Connector unreachable/);
  });

  it('keeps what was already sent', () => {
    const sent = [{ seq: 2, status: 'sent' as const, channelMessageId: '1:abc' }];
    expect(toSendError(failure(503), sent).sent).toEqual(sent);
  });
});

describe('Teams configuration', () => {
  it('is off unless an app id or TEAMS_ENABLED=true is set', () => {
    expect(teamsRequested({})).toBe(false);
    expect(loadTeamsConfig({}, LOCAL)).toBeUndefined();
    expect(loadTeamsConfig({ TEAMS_ENABLED: 'false' }, LOCAL)).toBeUndefined();
    expect(loadTeamsConfig({ TEAMS_ENABLED: 'true' }, LOCAL)).toEqual({
      bot: 'default',
      auth: undefined,
      sendTimeoutMs: 15_000,
      maxTextChars: DEFAULT_MAX_TEXT_CHARS,
    });
  });

  it('an app id turns authentication on, with the app type it implies', () => {
    expect(loadTeamsConfig({ TEAMS_APP_ID: 'app', TEAMS_APP_PASSWORD: 'secret' }, LOCAL)?.auth).toMatchObject(
      {
        appId: 'app',
        appType: 'MultiTenant',
      },
    );
    expect(
      loadTeamsConfig(
        { TEAMS_APP_ID: 'app', TEAMS_APP_PASSWORD: 'secret', TEAMS_APP_TENANT_ID: 'tenant' },
        LOCAL,
      )?.auth,
    ).toMatchObject({ appType: 'SingleTenant', tenantId: 'tenant' });
    expect(
      loadTeamsConfig(
        { TEAMS_APP_ID: 'app', TEAMS_APP_TYPE: 'UserAssignedMSI', TEAMS_APP_TENANT_ID: 't' },
        LOCAL,
      )?.auth,
    ).toMatchObject({ appType: 'UserAssignedMSI', password: undefined });
  });

  it('names what is missing or wrong', () => {
    const refuse = (env: Record<string, string>, message: RegExp) => {
      expect(() => loadTeamsConfig(env, LOCAL)).toThrow(ConfigError);
      expect(() => loadTeamsConfig(env, LOCAL)).toThrow(message);
    };
    refuse({ TEAMS_APP_ID: 'app' }, /TEAMS_APP_PASSWORD/);
    refuse(
      { TEAMS_APP_ID: 'app', TEAMS_APP_TYPE: 'SingleTenant', TEAMS_APP_PASSWORD: 's' },
      /TEAMS_APP_TENANT_ID/,
    );
    refuse(
      {
        TEAMS_APP_ID: 'app',
        TEAMS_APP_TYPE: 'UserAssignedMSI',
        TEAMS_APP_TENANT_ID: 't',
        TEAMS_APP_PASSWORD: 's',
      },
      /takes no TEAMS_APP_PASSWORD/,
    );
    refuse({ TEAMS_ENABLED: 'true', TEAMS_APP_TYPE: 'Whatever' }, /TEAMS_APP_TYPE/);
    refuse({ TEAMS_ENABLED: 'true', TEAMS_BOT: 'Not A Bot' }, /TEAMS_BOT/);
    refuse({ TEAMS_ENABLED: 'yes' }, /TEAMS_ENABLED/);
    refuse({ TEAMS_ENABLED: 'true', TEAMS_OPENID_METADATA_URL: 'not a url' }, /TEAMS_OPENID_METADATA_URL/);
    refuse(
      {
        TEAMS_APP_ID: 'app',
        TEAMS_APP_PASSWORD: 's',
        TEAMS_LOGIN_URL: 'http://login.example/botframework.com',
      },
      /TEAMS_LOGIN_URL: the login authority must be an https URL/,
    );
    refuse(
      {
        TEAMS_APP_ID: 'app',
        TEAMS_APP_TYPE: 'UserAssignedMSI',
        TEAMS_APP_TENANT_ID: 't',
        TEAMS_LOGIN_URL: 'https://login.example/t',
      },
      /takes no TEAMS_LOGIN_URL/,
    );
  });

  it('without an app id, refuses to start unless HOST is a loopback address', () => {
    for (const host of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.20', 'hub.example.com']) {
      expect(() => loadTeamsConfig({ TEAMS_ENABLED: 'true' }, host)).toThrow(ConfigError);
      expect(() => loadTeamsConfig({ TEAMS_ENABLED: 'true' }, host)).toThrow(
        new RegExp(
          `TEAMS_ENABLED=true without TEAMS_APP_ID .* set HOST=127\\.0\\.0\\.1 \\(it is ${host.replace(/\./g, '\\.')}\\)`,
        ),
      );
    }
    for (const host of ['127.0.0.1', '127.0.1.1', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1'])
      expect(loadTeamsConfig({ TEAMS_ENABLED: 'true' }, host)?.auth).toBeUndefined();
    // With an app id every request is authenticated: any address will do.
    expect(loadTeamsConfig({ TEAMS_APP_ID: 'app', TEAMS_APP_PASSWORD: 's' }, '0.0.0.0')?.auth).toMatchObject({
      appId: 'app',
    });
    // Channel off: HOST does not matter.
    expect(loadTeamsConfig({}, '0.0.0.0')).toBeUndefined();
  });

  it('tells loopback addresses and URLs from the rest', () => {
    expect(
      ['127.0.0.1', '127.9.9.9', '::1', '[::1]', 'LOCALHOST', '::ffff:127.0.0.1'].map(isLoopbackHost),
    ).toEqual(Array(6).fill(true));
    expect(
      ['0.0.0.0', '::', '128.0.0.1', '::ffff:10.0.0.1', 'a.localhost', '127.0.0.1.nip.io'].map(
        isLoopbackHost,
      ),
    ).toEqual(Array(6).fill(false));
    expect(isLoopbackUrl('http://[::ffff:127.0.0.1]:3978/')).toBe(true);
    expect(isLoopbackUrl('http://localhost:3978/')).toBe(true);
    expect(isLoopbackUrl('https://smba.trafficmanager.net/amer/')).toBe(false);
    expect(isLoopbackUrl('http://0.0.0.0:3978/')).toBe(false);
    expect(isLoopbackUrl('not a url')).toBe(false);
  });
});
