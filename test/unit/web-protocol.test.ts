import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { buildWidget } from '../../adapters/web/bundle.ts';
import { loadWebConfig, WebConfigError } from '../../adapters/web/config.ts';
import { originAllowed } from '../../adapters/web/origin.ts';
import { parseClientFrame } from '../../adapters/web/protocol.ts';
import { toMessageFrame } from '../../adapters/web/room.ts';
import { ConfigError } from '../../src/config/env.ts';
import type { MessageRecord } from '../../src/store/records.ts';

describe('client frames', () => {
  it('parses each frame type, with defaults', () => {
    expect(parseClientFrame('{"type":"hello"}')).toEqual({ frame: { type: 'hello', lastSeq: 0 } });
    expect(
      parseClientFrame(
        JSON.stringify({
          type: 'hello',
          token: 't'.repeat(43),
          bot: 'support',
          lastSeq: 7,
          pageUrl: 'https://a.example/x',
          language: 'de',
        }),
      ),
    ).toEqual({
      frame: {
        type: 'hello',
        token: 't'.repeat(43),
        bot: 'support',
        lastSeq: 7,
        pageUrl: 'https://a.example/x',
        language: 'de',
      },
    });
    expect(parseClientFrame('{"type":"message","id":"a1_B-2","text":"hi"}')).toEqual({
      frame: { type: 'message', id: 'a1_B-2', text: 'hi' },
    });
    expect(parseClientFrame('{"type":"ack","seq":3}')).toEqual({ frame: { type: 'ack', seq: 3 } });
    expect(parseClientFrame('{"type":"end"}')).toEqual({ frame: { type: 'end' } });
    expect(parseClientFrame('{"type":"ping"}')).toEqual({ frame: { type: 'ping' } });
  });

  it('says what is wrong with a bad frame', () => {
    expect(parseClientFrame('nope')).toEqual({ error: 'a frame is one JSON object', code: 'bad_frame' });
    expect(parseClientFrame('[]')).toHaveProperty('error');
    expect(parseClientFrame('{"type":"message","id":"m1","text":"a\\u0000"}')).toEqual({
      error: 'text: text must not contain NUL or unpaired surrogate characters',
      code: 'invalid_text',
      id: 'm1',
    });
    expect(parseClientFrame('{"type":"shout"}')).toHaveProperty('error');
    expect(parseClientFrame('{"type":"message","id":"","text":"x"}')).toEqual({
      error: 'id: id is 1 to 64 of A-Z a-z 0-9 _ -',
      code: 'bad_frame',
    });
    expect(
      (parseClientFrame(`{"type":"message","id":"${'a'.repeat(65)}","text":"x"}`) as { error: string }).error,
    ).toMatch(/^id:/);
    expect((parseClientFrame('{"type":"message","id":"a","text":5}') as { error: string }).error).toMatch(
      /^text:/,
    );
    expect((parseClientFrame('{"type":"hello","lastSeq":-1}') as { error: string }).error).toMatch(
      /^lastSeq:/,
    );
    expect((parseClientFrame('{"type":"hello","bot":"Not A Bot"}') as { error: string }).error).toMatch(
      /^bot:/,
    );
    expect((parseClientFrame('{"type":"ack","seq":1.5}') as { error: string }).error).toMatch(/^seq:/);
  });
});

describe('message frames from history rows', () => {
  const row = (over: Partial<MessageRecord>): MessageRecord => ({
    sessionId: 's-1',
    seq: 3,
    role: 'user',
    content: 'hi',
    envelopeId: null,
    inReplyTo: null,
    deliveryStatus: 'received',
    deliveryAttempts: 0,
    deliveryError: null,
    channelMessageId: null,
    payload: {},
    createdAt: '2026-01-01T00:00:00.000Z',
    ...over,
  });

  it('gives user rows their client id, replies what they answer and their suggestions; hides tool rows', () => {
    expect(toMessageFrame(row({ envelopeId: 'web:s-1:abc' }))).toEqual({
      type: 'message',
      seq: 3,
      role: 'user',
      text: 'hi',
      createdAt: '2026-01-01T00:00:00.000Z',
      clientId: 'abc',
    });
    expect(
      toMessageFrame(
        row({
          role: 'assistant',
          content: 'pick',
          inReplyTo: 'web:s-1:abc',
          payload: { suggestions: [{ text: 'Yes' }, { text: 'No', value: 'n' }] },
        }),
      ),
    ).toMatchObject({
      role: 'assistant',
      inReplyTo: 'web:s-1:abc',
      suggestions: [
        { text: 'Yes', value: 'Yes' },
        { text: 'No', value: 'n' },
      ],
    });
    expect(toMessageFrame(row({ role: 'tool' }))).toBeUndefined();
  });
});

describe('allowed origins', () => {
  it('lets any origin in when none are configured', () => {
    expect(originAllowed('https://any.example', 'hub:8080', undefined)).toBe(true);
  });
  it('checks the list, always allows the hub itself and clients that send no Origin', () => {
    const allowed = ['https://shop.example', 'http://localhost:3000'];
    expect(originAllowed('https://shop.example', 'hub:8080', allowed)).toBe(true);
    expect(originAllowed('HTTPS://SHOP.EXAMPLE', 'hub:8080', allowed)).toBe(true);
    expect(originAllowed('http://localhost:3000', 'hub:8080', allowed)).toBe(true);
    expect(originAllowed('https://shop.example.evil', 'hub:8080', allowed)).toBe(false);
    expect(originAllowed('http://shop.example', 'hub:8080', allowed)).toBe(false);
    expect(originAllowed('null', 'hub:8080', allowed)).toBe(false);
    expect(originAllowed('http://hub:8080', 'hub:8080', allowed)).toBe(true);
    expect(originAllowed(undefined, 'hub:8080', allowed)).toBe(true);
  });
});

describe('web configuration', () => {
  it('has defaults, and reads every variable', () => {
    expect(loadWebConfig({})).toEqual({
      enabled: true,
      allowedOrigins: undefined,
      frameAncestors: [],
      maxFrameBytes: 65_536,
      heartbeatMs: 30_000,
      helloTimeoutMs: 10_000,
    });
    expect(
      loadWebConfig({
        WEB_ENABLED: 'false',
        WEB_ALLOWED_ORIGINS: 'https://a.example, https://b.example:8443/',
        WEB_MAX_FRAME_BYTES: '2048',
        WEB_HEARTBEAT_MS: '5000',
        WEB_HELLO_TIMEOUT_MS: '1000',
        WEB_FRAME_ANCESTORS: 'https://intranet.example',
      }),
    ).toEqual({
      enabled: false,
      allowedOrigins: ['https://a.example', 'https://b.example:8443'],
      frameAncestors: ['https://intranet.example'],
      maxFrameBytes: 2048,
      heartbeatMs: 5000,
      helloTimeoutMs: 1000,
    });
  });
  it('names the bad variable, as a ConfigError', () => {
    expect(() => loadWebConfig({ WEB_ALLOWED_ORIGINS: 'shop.example' })).toThrow(/WEB_ALLOWED_ORIGINS/);
    expect(() => loadWebConfig({ WEB_MAX_FRAME_BYTES: '10' })).toThrow(WebConfigError);
    expect(() => loadWebConfig({ WEB_ENABLED: 'yes' })).toThrow(ConfigError);
  });
});

describe('the widget bundle', () => {
  it('is under 30 KB gzipped', async () => {
    const widget = await buildWidget();
    expect(gzipSync(widget.js).length).toBeLessThan(30 * 1024);
    expect(widget.gzip.length).toBeLessThan(30 * 1024);
    // It is the real widget, not an empty file.
    expect(widget.js.toString()).toContain('/ws');
    expect(widget.js.length).toBeGreaterThan(5_000);
  });
});
