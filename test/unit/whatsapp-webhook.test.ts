import { describe, expect, it } from 'vitest';
import { cloudMessageToEnvelope } from '../../adapters/whatsapp/webhook/envelope.ts';
import { NotAWhatsAppWebhookError, parseWebhook } from '../../adapters/whatsapp/webhook/parse.ts';
import { checkHandshake, signatureHeader, verifySignature } from '../../adapters/whatsapp/webhook/verify.ts';
import { EnvelopeSchema, MAX_ATTACHMENT_NAME } from '../../src/envelope.ts';
import type { Json } from '../fixtures/whatsapp/cloud-payloads.ts';
import * as doc from '../fixtures/whatsapp/cloud-payloads.ts';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('X-Hub-Signature-256', () => {
  // RFC 4231-style known answer: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
  const FOX = 'The quick brown fox jumps over the lazy dog';
  const FOX_HMAC = 'f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8';

  it('accepts the HMAC-SHA256 of the raw body with the app secret', () => {
    expect(verifySignature(bytes(FOX), `sha256=${FOX_HMAC}`, 'key')).toBe(true);
    expect(verifySignature(bytes(FOX), `sha256=${FOX_HMAC.toUpperCase()}`, 'key')).toBe(true);
    expect(signatureHeader(FOX, 'key')).toBe(`sha256=${FOX_HMAC}`);
  });

  it('refuses another secret, a changed body, a re-serialised body, and malformed headers', () => {
    expect(verifySignature(bytes(FOX), `sha256=${FOX_HMAC}`, 'other')).toBe(false);
    expect(verifySignature(bytes(`${FOX}.`), `sha256=${FOX_HMAC}`, 'key')).toBe(false);
    const raw = JSON.stringify(doc.textMessage, null, 2);
    const header = signatureHeader(raw, 'secret');
    expect(verifySignature(bytes(raw), header, 'secret')).toBe(true);
    expect(verifySignature(bytes(JSON.stringify(JSON.parse(raw))), header, 'secret')).toBe(false);
    for (const bad of [
      undefined,
      '',
      FOX_HMAC,
      `sha1=${FOX_HMAC}`,
      `sha256=${FOX_HMAC.slice(2)}`,
      `sha256=${'z'.repeat(64)}`,
    ])
      expect(verifySignature(bytes(FOX), bad, 'key')).toBe(false);
  });
});

describe('webhook verification handshake', () => {
  const query = (o: Record<string, string>) => ({
    'hub.mode': 'subscribe',
    'hub.verify_token': 'vt',
    'hub.challenge': '1158201444',
    ...o,
  });

  it('echoes the challenge when the token is ours', () => {
    expect(checkHandshake(query({}), 'vt')).toEqual({ ok: true, challenge: '1158201444' });
  });

  it('refuses a wrong token, another mode, or no challenge', () => {
    expect(checkHandshake(query({ 'hub.verify_token': 'nope' }), 'vt').ok).toBe(false);
    expect(checkHandshake(query({ 'hub.mode': 'unsubscribe' }), 'vt').ok).toBe(false);
    expect(checkHandshake(query({ 'hub.challenge': '' }), 'vt').ok).toBe(false);
    expect(checkHandshake({}, 'vt').ok).toBe(false);
  });
});

describe('parsing documented webhook payloads', () => {
  const only = (payload: unknown) => {
    const parsed = parseWebhook(payload);
    expect(parsed.messages).toHaveLength(1);
    return parsed.messages[0]!;
  };

  it('text: body, sender, profile name, business number and time', () => {
    const m = only(doc.textMessage);
    expect(m).toMatchObject({
      id: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=',
      waId: '16505551234',
      profileName: 'Sheena Nelson',
      phoneNumberId: '106540352242922',
      displayPhoneNumber: '15550783881',
      type: 'text',
      text: 'Does it come in another color?',
      attachments: [],
    });
    expect(m.sentAt?.toISOString()).toBe(new Date(1749416383 * 1000).toISOString());
  });

  it('interactive replies: the chosen id is the text, the rest is in the details', () => {
    const button = only(doc.buttonReply);
    expect(button.text).toBe('cancel-button');
    expect(button.details.reply).toEqual({ kind: 'button_reply', id: 'cancel-button', title: 'Cancel' });
    expect(button.details.context).toMatchObject({ from: '15550783881' });
    const list = only(doc.listReply);
    expect(list.text).toBe('priority_express');
    expect(list.details.reply).toMatchObject({ kind: 'list_reply', title: 'Priority Mail Express' });
  });

  it('media: image, audio, video, document and sticker carry their media ids', () => {
    expect(only(doc.imageMessage)).toMatchObject({
      text: 'Taj Mahal',
      attachments: [
        {
          type: 'image/jpeg',
          ref: '1003383421387256',
          url: 'https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=133...',
          data: { kind: 'image', sha256: 'SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=' },
        },
      ],
    });
    expect(only(doc.audioMessage).attachments[0]).toMatchObject({
      type: 'audio/ogg; codecs=opus',
      ref: '1003383421387256',
      data: { kind: 'audio', voice: true },
    });
    expect(only(doc.videoMessage)).toMatchObject({
      text: 'Tiny succulent',
      attachments: [{ type: 'video/mp4' }],
    });
    expect(only(doc.documentMessage)).toMatchObject({
      text: 'my receipt',
      attachments: [{ type: 'application/pdf', name: 'receipt.pdf', ref: '622684793477189' }],
    });
    expect(only(doc.stickerMessage).attachments[0]).toMatchObject({
      type: 'image/webp',
      ref: '1908647269898587',
      data: { kind: 'sticker', animated: true },
    });
  });

  it('location, contacts and reactions', () => {
    expect(only(doc.locationMessage).attachments).toEqual([
      {
        type: 'location',
        data: {
          address: '101 Forest Ave, Palo Alto, CA 94301',
          latitude: 37.44221496582,
          longitude: -122.16165924072,
          name: 'Philz Coffee',
          url: 'https://philzcoffee.com/',
        },
      },
    ]);
    const contacts = only(doc.contactsMessage).attachments[0]!;
    expect(contacts.type).toBe('contacts');
    expect((contacts.data!.contacts as Json[])[0].phones[0].wa_id).toBe('14125550829');
  });

  it('a reaction is skipped unless WHATSAPP_REACTIONS=message; then its emoji is the text', () => {
    expect(parseWebhook(doc.reactionMessage)).toMatchObject({
      messages: [],
      skipped: [{ reason: 'reaction (WHATSAPP_REACTIONS=ignore)' }],
    });
    const parsed = parseWebhook(doc.reactionMessage, { reactions: 'message' });
    expect(parsed.messages).toHaveLength(1);
    const reaction = parsed.messages[0]!;
    expect(reaction.text).toBe('👍');
    expect(reaction.details.reaction).toEqual({
      messageId: 'wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=',
      emoji: '👍',
    });
  });

  it('statuses: sent, delivered, and failed with the platform error', () => {
    expect(parseWebhook(doc.statusSent).statuses).toEqual([
      {
        messageId: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=',
        status: 'sent',
        recipientId: '16505551234',
        phoneNumberId: '106540352242922',
      },
    ]);
    expect(parseWebhook(doc.statusDelivered).statuses[0]!.status).toBe('delivered');
    const failed = parseWebhook(doc.statusFailed).statuses[0]!;
    expect(failed.status).toBe('failed');
    expect(failed.error).toBe(
      '131049 This message was not delivered to maintain healthy ecosystem engagement.: In order to maintain a healthy ecosystem engagement, the message failed to be delivered.',
    );
    expect(parseWebhook(doc.textMessage).statuses).toEqual([]);
  });

  it('a removed reaction and an unsupported message are skipped, never an empty message', () => {
    for (const reactions of ['ignore', 'message'] as const)
      expect(parseWebhook(doc.reactionRemoved, { reactions })).toEqual({
        messages: [],
        statuses: [],
        errors: [],
        skipped: [
          {
            what: 'message wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAC=',
            reason: 'reaction removed',
          },
        ],
      });
    // Some payloads carry the emoji empty rather than omitted.
    const emptied = structuredClone(doc.reactionMessage) as Json;
    emptied.entry[0].changes[0].value.messages[0].reaction.emoji = '';
    expect(parseWebhook(emptied, { reactions: 'message' }).skipped[0]!.reason).toBe('reaction removed');
    expect(parseWebhook(doc.unsupportedMessage)).toMatchObject({
      messages: [],
      skipped: [
        {
          reason:
            'unsupported message (131051 Message type unknown: Message type is currently not supported.)',
        },
      ],
    });
    // Whatever the type, a message with no text, no file and no chosen reply is nothing to answer.
    const order = structuredClone(doc.textMessage) as Json;
    const m = order.entry[0].changes[0].value.messages[0];
    delete m.text;
    m.type = 'order';
    m.order = { catalog_id: '1', product_items: [{ product_retailer_id: 'sku1', quantity: 1 }] };
    expect(parseWebhook(order).skipped[0]!.reason).toBe('order message with nothing to read');
  });

  it('account errors are reported; system messages and unreadable items are skipped, the rest kept', () => {
    expect(parseWebhook(doc.valueError).errors[0]!.error).toMatch(/^130429 Rate limit hit: Message failed/);
    const system = parseWebhook(doc.systemMessage);
    expect(system.messages).toEqual([]);
    expect(system.skipped[0]!.reason).toBe('system message');
    const mixed = structuredClone(doc.textMessage) as Json;
    mixed.entry[0].changes[0].value.messages.unshift({ id: 'wamid.broken', type: 'text' });
    const parsed = parseWebhook(mixed);
    expect(parsed.messages.map((m) => m.text)).toEqual(['Does it come in another color?']);
    expect(parsed.skipped).toHaveLength(1);
  });

  it('a batch: every message of every change, in order', () => {
    const batch = doc.batchOf(
      doc.textMessage,
      doc.variant(doc.imageMessage, { suffix: 'b', from: '5511999999999' }),
      doc.buttonReply,
    );
    expect(parseWebhook(batch).messages.map((m) => [m.waId, m.type])).toEqual([
      ['16505551234', 'text'],
      ['5511999999999', 'image'],
      ['16505551234', 'interactive'],
    ]);
  });

  it('refuses what is not a WhatsApp Business Account webhook', () => {
    expect(() => parseWebhook({ object: 'page', entry: [] })).toThrow(NotAWhatsAppWebhookError);
    expect(() => parseWebhook('hello')).toThrow(NotAWhatsAppWebhookError);
  });
});

describe('Cloud API message → envelope', () => {
  it('a document whose name is over the envelope limit: the message keeps its caption, the name is cut', () => {
    const name = `${'n'.repeat(596)}.pdf`;
    const payload = JSON.parse(JSON.stringify(doc.documentMessage));
    payload.entry[0].changes[0].value.messages[0].document.filename = name;
    const m = parseWebhook(payload).messages[0]!;
    const envelope = EnvelopeSchema.parse(
      cloudMessageToEnvelope(m, 'default', new Date('2025-06-09T00:00:00Z')),
    );
    expect(envelope.text).toBe('my receipt');
    expect(envelope.attachments).toMatchObject([
      { type: 'application/pdf', ref: '622684793477189', name: name.slice(0, MAX_ATTACHMENT_NAME) },
    ]);
  });

  it('keys the session by the E.164 number and keeps the business number in replyTo', () => {
    const now = new Date('2025-06-09T00:00:00Z');
    const m = parseWebhook(doc.textMessage).messages[0]!;
    const envelope = EnvelopeSchema.parse(cloudMessageToEnvelope(m, 'support', now));
    expect(envelope).toMatchObject({
      id: 'whatsapp:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=',
      channel: 'whatsapp',
      bot: 'support',
      from: { id: '+16505551234', name: 'Sheena Nelson' },
      text: 'Does it come in another color?',
      replyTo: {
        transport: 'cloud',
        phoneNumberId: '106540352242922',
        waId: '16505551234',
        messageId: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=',
        at: new Date(1749416383 * 1000).toISOString(),
      },
      meta: { transport: 'cloud', type: 'text', phoneNumberId: '106540352242922' },
      receivedAt: now.toISOString(),
    });
  });

  it('does not believe a timestamp from the future, and refuses an id that is no phone number', () => {
    const m = parseWebhook(doc.textMessage).messages[0]!;
    const now = new Date('2020-01-01T00:00:00Z');
    expect((cloudMessageToEnvelope(m, 'default', now)!.replyTo as { at: string }).at).toBe(now.toISOString());
    expect(cloudMessageToEnvelope({ ...m, waId: '12' }, 'default')).toBeUndefined();
  });
});
