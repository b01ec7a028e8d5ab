import { describe, expect, it } from 'vitest';
import wwebjs from 'whatsapp-web.js';
import type { WebMessage } from '../../adapters/whatsapp/web/client.ts';
import { webMessageToEnvelope } from '../../adapters/whatsapp/web/inbound.ts';

/*
 * Messages built by whatsapp-web.js's own `Message` class from the page's message model, as the
 * library does before it emits `message` (Client.js: `new Message(this, msg)`): `body`,
 * `hasMedia`, `mentionedIds` and `type` come out exactly as the channel will see them.
 */
const { Message } = wwebjs as unknown as {
  Message: new (client: unknown, data: Record<string, unknown>) => WebMessage;
};

const PERSON = '5511999999999@c.us';
const GROUP = '120363025246125486@g.us';
/** The linked account: its phone number's id and its `@lid`. */
const SELF = ['5511888888888@c.us', '208751234567890@lid'];
let serial = 0;

const wid = (serialized: string) => {
  const [user, server] = serialized.split('@');
  return { server, user, _serialized: serialized };
};

/** A message model as WhatsApp Web's page serialises it (`getMessageModel`). */
function model(data: Record<string, unknown>): WebMessage {
  const from = (data.from as string | undefined) ?? PERSON;
  const id = `3EB0${(++serial).toString(16).padStart(16, '0').toUpperCase()}`;
  return new Message(
    {},
    {
      id: { fromMe: false, remote: from, id, _serialized: `false_${from}_${id}` },
      t: 1_700_000_000,
      to: SELF[0],
      notifyName: 'Ana',
      isNewMsg: true,
      ...data,
      from,
    },
  );
}

const o = { bot: 'default', groups: 'ignore' as const, now: new Date('2025-01-01T00:00:00Z') };

describe('whatsapp-web.js: what is a message for the bot', () => {
  it('system notices the library emits as messages (empty body) are ignored, with their type', () => {
    const notices = [
      model({ type: 'e2e_notification', subtype: 'encrypt' }),
      model({ type: 'notification_template', subtype: 'biz_verified_transition_top_to_bottom' }),
      model({ type: 'notification', subtype: 'change_number' }),
      model({ type: 'call_log', subtype: 'miss' }),
      model({ type: 'protocol', subtype: 'ephemeral_setting' }),
      model({ type: 'gp2', subtype: 'add', from: GROUP, author: PERSON }),
    ];
    for (const notice of notices) {
      expect(notice.body).toBe('');
      expect(webMessageToEnvelope(notice, o)).toEqual({ kind: 'ignored', reason: `${notice.type} message` });
    }
  });

  it('kinds the channel does not read are ignored even with a body (a poll, a revoked message)', () => {
    expect(webMessageToEnvelope(model({ type: 'poll_creation', pollName: 'Lunch?' }), o)).toEqual({
      kind: 'ignored',
      reason: 'poll_creation message',
    });
    expect(webMessageToEnvelope(model({ type: 'revoked' }), o)).toMatchObject({ kind: 'ignored' });
  });

  it('a message of a readable type with no text and no file is ignored (the backstop)', () => {
    expect(webMessageToEnvelope(model({ type: 'chat', body: '' }), o)).toEqual({
      kind: 'ignored',
      reason: 'empty message',
    });
    expect(webMessageToEnvelope(model({ type: 'chat', body: ' \n ' }), o)).toMatchObject({ kind: 'ignored' });
  });

  it('text, a button or list answer, and a photo without caption are messages', () => {
    expect(webMessageToEnvelope(model({ type: 'chat', body: 'oi' }), o)).toMatchObject({
      kind: 'envelope',
      envelope: { text: 'oi', from: { id: '+5511999999999', name: 'Ana' } },
    });
    expect(
      webMessageToEnvelope(model({ type: 'buttons_response', body: 'Basic', selectedButtonId: 'b1' }), o),
    ).toMatchObject({ kind: 'envelope', envelope: { text: 'Basic' } });
    expect(webMessageToEnvelope(model({ type: 'list_response', body: 'Pro' }), o)).toMatchObject({
      kind: 'envelope',
    });
    const photo = model({
      type: 'image',
      directPath: '/v/t62.7118-24/1',
      mimetype: 'image/jpeg',
      size: 2048,
    });
    expect(photo.hasMedia).toBe(true);
    expect(webMessageToEnvelope(photo, o)).toMatchObject({
      kind: 'envelope',
      envelope: { text: '', attachments: [{ type: 'image/jpeg', size: 2048 }] },
    });
  });
});

describe('whatsapp-web.js location messages', () => {
  /** What WhatsApp Web's page holds as a location's `body`: the map's thumbnail, a base64 JPEG. */
  const THUMBNAIL = `/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcU${'A'.repeat(2000)}`;

  it('a shared place is a location attachment, as on the Cloud API and Telegram, and the thumbnail is no text', () => {
    const place = model({
      type: 'location',
      body: THUMBNAIL,
      lat: -23.5613,
      lng: -46.6565,
      loc: 'Padaria Real\nAv. Paulista, 1000',
      clientUrl: 'https://padariareal.example',
    });
    expect(place.hasMedia).toBe(false);
    expect(place.body).toBe(THUMBNAIL);
    const result = webMessageToEnvelope(place, o);
    expect(result).toMatchObject({ kind: 'envelope', envelope: { text: '', meta: { type: 'location' } } });
    expect(result.kind === 'envelope' && result.envelope.attachments).toEqual([
      {
        type: 'location',
        data: {
          latitude: -23.5613,
          longitude: -46.6565,
          name: 'Padaria Real',
          address: 'Av. Paulista, 1000',
          url: 'https://padariareal.example',
        },
      },
    ]);
  });

  it('a current location (coordinates only) is a message even without a thumbnail', () => {
    for (const body of [THUMBNAIL, undefined]) {
      const here = model({ type: 'location', body, lat: 38.7223, lng: -9.1393 });
      const result = webMessageToEnvelope(here, o);
      expect(result.kind === 'envelope' && result.envelope).toMatchObject({
        text: '',
        attachments: [{ type: 'location', data: { latitude: 38.7223, longitude: -9.1393 } }],
      });
    }
  });

  it('a location without usable coordinates is ignored, its thumbnail not taken for text', () => {
    expect(webMessageToEnvelope(model({ type: 'location', body: THUMBNAIL }), o)).toEqual({
      kind: 'ignored',
      reason: 'location message without coordinates',
    });
  });
});

describe('whatsapp-web.js groups', () => {
  const inGroup = (data: Record<string, unknown>) =>
    model({ type: 'chat', from: GROUP, author: '5511777777777@c.us', ...data });
  const accept = { ...o, groups: 'accept' as const, self: SELF };

  it('WHATSAPP_WEB_GROUPS=accept answers a mention of the linked account, without the mention', () => {
    const byLid = inGroup({
      body: '@208751234567890 what are your hours?',
      mentionedJidList: [wid('208751234567890@lid')],
    });
    expect(byLid.mentionedIds).toEqual([wid('208751234567890@lid')]);
    expect(webMessageToEnvelope(byLid, accept)).toMatchObject({
      kind: 'envelope',
      envelope: { text: 'what are your hours?', from: { id: '+5511777777777' }, thread: GROUP },
    });
    const byNumber = inGroup({ body: 'hi @5511888888888 !', mentionedJidList: ['5511888888888@c.us'] });
    expect(webMessageToEnvelope(byNumber, accept)).toMatchObject({ envelope: { text: 'hi !' } });
  });

  it('WHATSAPP_WEB_GROUPS=accept answers a reply to one of its messages', () => {
    const reply = inGroup({
      body: 'Ana',
      quotedMsg: { type: 'chat', body: 'What is your name?' },
      quotedParticipant: wid('208751234567890@lid'),
    });
    expect((reply as unknown as { hasQuotedMsg: boolean }).hasQuotedMsg).toBe(true);
    expect(webMessageToEnvelope(reply, accept)).toMatchObject({
      kind: 'envelope',
      envelope: { text: 'Ana' },
    });
  });

  it('WHATSAPP_WEB_GROUPS=accept leaves the rest of the group alone; all answers it', () => {
    const reason = 'a group message that neither mentions nor replies to us';
    const others = [
      inGroup({ body: 'hello everyone' }),
      inGroup({ body: '@5511666666666 hi', mentionedJidList: [wid('5511666666666@c.us')] }),
      inGroup({ body: 'yes', quotedMsg: { type: 'chat' }, quotedParticipant: wid('5511666666666@c.us') }),
    ];
    for (const m of others) {
      expect(webMessageToEnvelope(m, accept)).toEqual({ kind: 'ignored', reason });
      expect(webMessageToEnvelope(m, { ...accept, groups: 'all' })).toMatchObject({ kind: 'envelope' });
    }
    // Its own ids unknown (not looked up), nothing in a group can be addressed to it.
    const mention = inGroup({ body: '@5511888888888 hi', mentionedJidList: ['5511888888888@c.us'] });
    expect(webMessageToEnvelope(mention, { ...accept, self: [] })).toEqual({ kind: 'ignored', reason });
  });
});
