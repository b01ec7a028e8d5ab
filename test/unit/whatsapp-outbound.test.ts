import { describe, expect, it } from 'vitest';
import { toSendError } from '../../adapters/whatsapp/cloud/errors.ts';
import { GraphRequestError, parseRetryAfter } from '../../adapters/whatsapp/cloud/graph.ts';
import { EMPTY_BODY_PROMPT, planReply } from '../../adapters/whatsapp/cloud/outbound.ts';
import { loadWhatsAppConfig } from '../../adapters/whatsapp/config.ts';
import { RecipientPacer } from '../../adapters/whatsapp/pacing.ts';
import { toE164 } from '../../adapters/whatsapp/phone.ts';
import { splitText, truncate } from '../../adapters/whatsapp/text.ts';
import { webMessageToEnvelope } from '../../adapters/whatsapp/web/inbound.ts';
import { planWebReply } from '../../adapters/whatsapp/web/sender.ts';
import { ConfigError } from '../../src/config/env.ts';
import type { OutboundReply } from '../../src/delivery/sender.ts';
import type { Json } from '../fixtures/whatsapp/cloud-payloads.ts';

const reply = (text: string, payload: OutboundReply['payload'] = {}): OutboundReply => ({
  seq: 2,
  text,
  payload,
});

describe('splitting text', () => {
  it('keeps every character, breaks at spaces and lines, never above the limit', () => {
    const text = `${'lorem ipsum '.repeat(900)}\n\n${'x'.repeat(5000)}`;
    const pieces = splitText(text, 4096);
    expect(pieces.join('')).toBe(text);
    expect(pieces.every((p) => p.length <= 4096)).toBe(true);
    expect(pieces[0]!.endsWith(' ')).toBe(true);
    expect(splitText('short', 4096)).toEqual(['short']);
    expect(splitText('', 10)).toEqual(['']);
  });

  it('never cuts a surrogate pair', () => {
    const text = '😀'.repeat(3000); // 6000 UTF-16 units
    const pieces = splitText(text, 4095);
    expect(pieces.join('')).toBe(text);
    for (const p of pieces) expect(p.length % 2).toBe(0);
    expect(truncate('😀😀😀', 4)).toBe('😀…');
  });
});

describe('Cloud API messages for a reply', () => {
  it('text up to 4,096 characters is one message; longer is several', () => {
    expect(planReply(reply('hi'), '16505551234').messages).toEqual([
      {
        recipient_type: 'individual',
        to: '16505551234',
        type: 'text',
        text: { body: 'hi', preview_url: false },
      },
    ]);
    const long = planReply(reply('word '.repeat(2000)), '1').messages;
    expect(long).toHaveLength(3);
    expect(long.map((m: Json) => m.text.body).join('')).toBe('word '.repeat(2000));
  });

  it('up to 3 short suggestions are reply buttons whose ids are the values', () => {
    const plan = planReply(
      reply('Which size?', { suggestions: [{ text: 'Small', value: 'size:s' }, { text: 'Large' }] }),
      '1',
    );
    expect(plan.messages).toEqual([
      {
        recipient_type: 'individual',
        to: '1',
        type: 'interactive',
        interactive: {
          type: 'button',
          body: { text: 'Which size?' },
          action: {
            buttons: [
              { type: 'reply', reply: { id: 'size:s', title: 'Small' } },
              { type: 'reply', reply: { id: 'Large', title: 'Large' } },
            ],
          },
        },
      },
    ]);
  });

  it('more than 3, or a title over 20 characters, is a list of at most 10 rows', () => {
    const many = Array.from({ length: 12 }, (_, i) => ({ text: `Option ${i}`, value: `o${i}` }));
    const plan = planReply(reply('', { suggestions: many }), '1');
    const interactive = (plan.messages[0] as Json).interactive;
    expect(interactive.type).toBe('list');
    expect(interactive.body.text).toBe(EMPTY_BODY_PROMPT);
    expect(interactive.action.sections[0].rows).toHaveLength(10);
    expect(plan.droppedSuggestions).toBe(2);
    const wordy = planReply(
      reply('Pick', { suggestions: [{ text: 'A title that is far longer than the limit' }] }),
      '1',
    );
    const row = (wordy.messages[0] as Json).interactive.action.sections[0].rows[0];
    expect(row.title.length).toBeLessThanOrEqual(24);
    expect(row.title.endsWith('…')).toBe(true);
    expect(row.description).toBe('A title that is far longer than the limit');
  });

  it('a long text before suggestions goes first; the interactive body stays within 1,024', () => {
    const text = `${'a '.repeat(1000)}Choose now`;
    const plan = planReply(reply(text, { suggestions: [{ text: 'Yes' }] }), '1');
    expect(plan.messages.map((m: Json) => m.type)).toEqual(['text', 'interactive']);
    const body = (plan.messages[1] as Json).interactive.body.text as string;
    expect(body.length).toBeLessThanOrEqual(1024);
    expect((plan.messages[0] as Json).text.body + body).toBe(text);
  });

  it('attachments with a URL or a media id follow the text', () => {
    const plan = planReply(
      reply('see', {
        attachments: [
          { type: 'image/png', url: 'https://example.test/a.png' },
          { type: 'application/pdf', ref: '622684793477189', name: 'receipt.pdf' },
          { type: 'image/png' },
        ],
      }),
      '1',
    );
    expect(plan.messages.slice(1)).toEqual([
      { recipient_type: 'individual', to: '1', type: 'image', image: { link: 'https://example.test/a.png' } },
      {
        recipient_type: 'individual',
        to: '1',
        type: 'document',
        document: { id: '622684793477189', filename: 'receipt.pdf' },
      },
    ]);
    expect(plan.droppedAttachments).toBe(1);
  });
});

describe('Graph API errors', () => {
  const err = (details: ConstructorParameters<typeof GraphRequestError>[1], message = 'm') =>
    toSendError(new GraphRequestError(message, details), []);

  it('131047: not retryable, says the 24-hour window is closed', () => {
    const e = err(
      {
        httpStatus: 400,
        code: 131047,
        description: 'Message failed to send because more than 24 hours have passed',
      },
      '(#131047) Re-engagement message',
    );
    expect(e.retryable).toBe(false);
    expect(e.message).toMatch(/24-hour customer service window \(error 131047\)/);
  });

  it('rate limits are retried, honouring Retry-After; the pair limit waits 6 s', () => {
    for (const code of [130429, 80007, 4, 131048])
      expect(err({ httpStatus: 400, code }).retryable).toBe(true);
    expect(err({ httpStatus: 429, retryAfterMs: 2000 })).toMatchObject({
      retryable: true,
      retryAfterMs: 2000,
    });
    expect(err({ httpStatus: 400, code: 131056 }).retryAfterMs).toBe(6000);
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(null)).toBeUndefined();
  });

  it('outages are retried; refusals are not', () => {
    expect(err({}).retryable).toBe(true);
    expect(err({ httpStatus: 503 }).retryable).toBe(true);
    expect(err({ httpStatus: 400, code: 131000 }).retryable).toBe(true);
    expect(err({ httpStatus: 401, code: 190 }).retryable).toBe(false);
    expect(err({ httpStatus: 400, code: 131026 }).retryable).toBe(false);
  });
});

describe('per-recipient pacing', () => {
  it('spaces messages to one person and leaves others alone', async () => {
    const waits: number[] = [];
    const pacer = new RecipientPacer(1000, async (ms) => void waits.push(ms));
    await pacer.wait('a');
    await pacer.wait('a');
    await pacer.wait('b');
    await pacer.wait('a');
    expect(waits).toHaveLength(2);
    expect(waits[0]).toBeGreaterThan(900);
    expect(waits[1]).toBeGreaterThan(1900);
    const unpaced = new RecipientPacer(0, async () => expect.fail('no wait without pacing'));
    await unpaced.wait('a');
    await unpaced.wait('a');
  });
});

describe('phone numbers', () => {
  it('normalises WhatsApp ids and chat ids to E.164', () => {
    expect(toE164('16505551234')).toBe('+16505551234');
    expect(toE164('5511999999999@c.us')).toBe('+5511999999999');
    expect(toE164('+44 20 7946 0958')).toBe('+442079460958');
    expect(toE164('123')).toBeUndefined();
  });
});

describe('whatsapp-web.js message → envelope', () => {
  const base = {
    id: { _serialized: 'false_5511999999999@c.us_3EB0C767D26A3D5C5C6B', fromMe: false },
    from: '5511999999999@c.us',
    to: '5511888888888@c.us',
    body: 'oi',
    type: 'chat',
    timestamp: 1_700_000_000,
    _data: { notifyName: 'Ana' },
  };
  const o = { bot: 'default', groups: 'ignore' as const, now: new Date('2025-01-01T00:00:00Z') };

  it('keys the session by the E.164 number of the chat', () => {
    const r = webMessageToEnvelope(base, o);
    expect(r.kind).toBe('envelope');
    if (r.kind !== 'envelope') return;
    expect(r.envelope).toMatchObject({
      id: 'whatsapp:false_5511999999999@c.us_3EB0C767D26A3D5C5C6B',
      from: { id: '+5511999999999', name: 'Ana' },
      text: 'oi',
      replyTo: { transport: 'web', chatId: '5511999999999@c.us' },
    });
    expect(r.envelope.thread).toBeUndefined();
  });

  it('ignores status broadcasts, our own messages, and groups unless accepted (all of a group: `all`)', () => {
    expect(webMessageToEnvelope({ ...base, from: 'status@broadcast', isStatus: true }, o)).toMatchObject({
      kind: 'ignored',
      reason: 'status broadcast',
    });
    expect(webMessageToEnvelope({ ...base, fromMe: true }, o).kind).toBe('ignored');
    const group = { ...base, from: '120363025246125486@g.us', author: '5511777777777@c.us' };
    expect(webMessageToEnvelope(group, o)).toMatchObject({ kind: 'ignored', reason: 'group message' });
    const accepted = webMessageToEnvelope(group, { ...o, groups: 'all' });
    expect(accepted).toMatchObject({
      kind: 'envelope',
      envelope: {
        from: { id: '+5511777777777' },
        thread: '120363025246125486@g.us',
        replyTo: { chatId: '120363025246125486@g.us' },
      },
    });
  });

  it('a @lid chat needs its phone number looked up first', () => {
    const lid = { ...base, from: '123456789012345@lid' };
    expect(webMessageToEnvelope(lid, o)).toEqual({ kind: 'needs_phone', lid: '123456789012345@lid' });
    const r = webMessageToEnvelope(lid, { ...o, phoneOf: () => '5511999999999@c.us' });
    expect(r).toMatchObject({
      envelope: { from: { id: '+5511999999999' }, replyTo: { chatId: '123456789012345@lid' } },
    });
  });

  it('a media message announces its type, name and size; the bytes come later', () => {
    const photo = {
      ...base,
      type: 'document',
      hasMedia: true,
      body: 'the invoice',
      _data: { mimetype: 'application/pdf', filename: 'invoice.pdf', size: 94211 },
    };
    expect(webMessageToEnvelope(photo, o)).toMatchObject({
      envelope: {
        text: 'the invoice',
        attachments: [
          {
            type: 'application/pdf',
            name: 'invoice.pdf',
            size: 94211,
            data: { kind: 'document', transport: 'web' },
          },
        ],
      },
    });
  });

  it('suggestions and cards become numbered lines; the numbers are remembered as choices', () => {
    expect(
      planWebReply(reply('Size?', { suggestions: [{ text: 'S' }, { text: 'M', value: 'medium' }] })),
    ).toEqual({
      pieces: [{ text: 'Size?\n\n1. S\n2. M' }],
      choices: [
        { title: 'S', value: 'S' },
        { title: 'M', value: 'medium' },
      ],
      dropped: 0,
    });
    const card = {
      title: 'Kettle',
      text: 'Boils fast.',
      buttons: [
        { title: 'Buy it', value: 'buy' },
        { title: 'Manual', url: 'https://example.com/m' },
      ],
    };
    // A text of the bot's own, then the card, then the suggestions numbered on.
    expect(
      planWebReply(reply('Look:', { cards: [card], suggestions: [{ text: 'Later', value: 'later' }] })),
    ).toMatchObject({
      pieces: [
        { text: 'Look:\n\nKettle\nBoils fast.\n1. Buy it\nManual: https://example.com/m\n\n2. Later' },
      ],
      choices: [
        { title: 'Buy it', value: 'buy' },
        { title: 'Later', value: 'later' },
      ],
    });
  });

  it("the store's files go as media, the short text as the first one's caption", () => {
    const fileId = '0b6c1a3e-5d4f-4c2b-9a8e-7f6d5c4b3a21';
    const other = '1c7d2b4f-6e5a-4d3c-8b9f-8a7e6d5c4b32';
    const attachments = [
      { type: 'image/png', name: 'kettle.png', fileId },
      { type: 'application/pdf', name: 'manual.pdf', fileId: other },
    ];
    expect(planWebReply(reply('Here it is.', { attachments })).pieces).toEqual([
      { text: 'Here it is.', file: { fileId } },
      { text: '', file: { fileId: other } },
    ]);
    // A text that only names the files (SEND FILE without a caption) is not sent.
    expect(
      planWebReply(reply('kettle.png', { attachments: [attachments[0]!], textIsFallback: true })).pieces,
    ).toEqual([{ text: '', file: { fileId } }]);
    // With choices to answer, the text goes first, on its own.
    expect(
      planWebReply(reply('Like it?', { attachments: [attachments[0]!], suggestions: [{ text: 'Yes' }] }))
        .pieces,
    ).toEqual([{ text: 'Like it?\n\n1. Yes' }, { text: '', file: { fileId } }]);
    // A platform URL is no file of the store: left out, and counted.
    expect(
      planWebReply(reply('x', { attachments: [{ type: 'image', url: 'https://x.example/a.png' }] })),
    ).toMatchObject({
      pieces: [{ text: 'x' }],
      dropped: 1,
    });
  });
});

describe('configuration', () => {
  it('is off without variables, and names what the Cloud API still needs', () => {
    expect(loadWhatsAppConfig({}, '/tmp/d')).toBeUndefined();
    expect(() => loadWhatsAppConfig({ WHATSAPP_ACCESS_TOKEN: 't' }, '/tmp/d')).toThrow(ConfigError);
    expect(() => loadWhatsAppConfig({ WHATSAPP_ACCESS_TOKEN: 't' }, '/tmp/d')).toThrow(
      /WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN/,
    );
  });

  it('maps business numbers to bots and keeps WhatsApp Web data under DATA_DIR', () => {
    const c = loadWhatsAppConfig(
      {
        WHATSAPP_ACCESS_TOKEN: 't',
        WHATSAPP_APP_SECRET: 's',
        WHATSAPP_VERIFY_TOKEN: 'v',
        WHATSAPP_NUMBERS: '106540352242922:support, 106540352242923:default',
        WHATSAPP_WEB: 'on',
      },
      '/srv/data',
    )!;
    expect([...c.cloud!.numbers]).toEqual([
      ['106540352242922', 'support'],
      ['106540352242923', 'default'],
    ]);
    expect(c.cloud!.graphUrl).toBe('https://graph.facebook.com');
    expect(c.web).toMatchObject({
      mode: 'on',
      authDir: '/srv/data/whatsapp-web',
      chromiumPath: '/usr/bin/chromium',
    });
    expect(() => loadWhatsAppConfig({ WHATSAPP_WEB: 'on', WHATSAPP_NUMBERS: 'abc' }, '/d')).toThrow(
      /<phone_number_id>:<bot>/,
    );
  });

  it('reactions are ignored unless WHATSAPP_REACTIONS=message', () => {
    const cloud = { WHATSAPP_ACCESS_TOKEN: 't', WHATSAPP_APP_SECRET: 's', WHATSAPP_VERIFY_TOKEN: 'v' };
    expect(loadWhatsAppConfig(cloud, '/d')!.cloud!.reactions).toBe('ignore');
    expect(loadWhatsAppConfig({ ...cloud, WHATSAPP_REACTIONS: 'message' }, '/d')!.cloud!.reactions).toBe(
      'message',
    );
    expect(() => loadWhatsAppConfig({ ...cloud, WHATSAPP_REACTIONS: 'text' }, '/d')).toThrow(
      /WHATSAPP_REACTIONS/,
    );
  });

  it('WhatsApp Web groups: ignore (the default), accept or all', () => {
    expect(loadWhatsAppConfig({ WHATSAPP_WEB: 'on' }, '/d')!.web!.groups).toBe('ignore');
    expect(loadWhatsAppConfig({ WHATSAPP_WEB: 'on', WHATSAPP_WEB_GROUPS: 'all' }, '/d')!.web!.groups).toBe(
      'all',
    );
  });
});
