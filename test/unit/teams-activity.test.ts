import { describe, expect, it } from 'vitest';
import { replyToIdFor } from '../../adapters/teams/ids.ts';
import {
  activityToEnvelope,
  cardActionToEnvelope,
  messageText,
} from '../../adapters/teams/inbound/envelope.ts';
import {
  type InboundActivity,
  NotAnActivityError,
  parseActivity,
} from '../../adapters/teams/inbound/parse.ts';
import { parseEnvelope } from '../../src/envelope.ts';
import * as doc from '../fixtures/teams/activities.ts';

const now = new Date('2024-05-01T12:00:00Z');
const parsed = (body: unknown) => parseActivity(structuredClone(body));
const envelopeOf = (body: unknown, bot = 'default') => {
  const p = parsed(body);
  if (p.kind === 'ignore') throw new Error(`ignored: ${p.reason}`);
  // What the core would accept, defaults applied.
  return parseEnvelope(
    p.kind === 'action'
      ? cardActionToEnvelope(p.activity, p, { bot, now })
      : activityToEnvelope(p.activity, p.kind, { bot, now }),
  );
};

describe('Teams activities → envelopes (documented payloads)', () => {
  it('a 1:1 message: the person by Entra ID object id, the conversation as thread, the reference to answer', () => {
    const envelope = envelopeOf(doc.personalMessage);
    const conversationId = doc.personalMessage.conversation.id;
    expect(envelope).toEqual({
      id: `teams:${conversationId}|1485983408511`,
      kind: 'message',
      channel: 'teams',
      bot: 'default',
      from: {
        id: '7faf8ab2-3d56-4244-b585-20c8a42ed2b8',
        name: 'Megan Bowen',
        tenant: '72f988bf-86f1-41af-91ab-2d7cd011db47',
      },
      thread: conversationId,
      text: 'Hello Teams TestBot.Sending bold-italic rich text',
      // The text/html attachment is Teams' rich-text copy of the text: not an attachment.
      attachments: [],
      replyTo: {
        activityId: '1485983408511',
        user: doc.personalMessage.from,
        bot: doc.personalMessage.recipient,
        conversation: doc.personalMessage.conversation,
        channelId: 'msteams',
        locale: 'en-US',
        serviceUrl: 'https://smba.trafficmanager.net/amer/',
      },
      meta: {
        conversationType: 'personal',
        tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47',
        botFrameworkChannel: 'msteams',
        userId: doc.personalMessage.from.id,
        locale: 'en-US',
      },
      receivedAt: '2024-05-01T12:00:00.000Z',
    });
  });

  it('without an Entra ID object id, the person is their Teams user id', () => {
    const activity = structuredClone(doc.personalMessage);
    delete activity.from.aadObjectId;
    expect(envelopeOf(activity).from.id).toBe(doc.personalMessage.from.id);
  });

  it('a channel message: the thread is the conversation, the image is kept, a colleague mention stays', () => {
    const envelope = envelopeOf({ ...doc.channelMessage, id: '1481567603816' });
    expect(envelope.thread).toBe('19:aebd0ad4d6ab42c8b9ed19c251c2fc37@thread.skype;messageid=1481567603816');
    expect(envelope.text).toBe('Hey <at>Pranav Smith</at> check out this message');
    expect(envelope.attachments).toEqual([
      {
        type: 'image/png',
        name: 'Bender_Rodriguez.png',
        url: 'https://upload.wikimedia.org/wikipedia/en/a/a6/Bender_Rodriguez.png',
        // Its bytes are fetched by the worker, before the turn.
        pending: true,
      },
    ]);
    expect(envelope.from).toEqual({ id: '29:9e52142b-5e5e-4d7b-bb3e-e82dcf620000', name: 'Jane Smith' });
  });

  it("the bot's own @mention is removed, with botbuilder's helper", () => {
    expect(envelopeOf(doc.channelMessageToBot).text).toBe('Hey <at>Pranav Smith</at> check out this message');
    expect(envelopeOf(doc.groupChatMessage).text).toBe('Hello everyone');
    // Another bot's mention is someone else's.
    const other = structuredClone(doc.groupChatMessage);
    other.entities[0].mentioned.id = '28:some-other-bot';
    expect(messageText(parsedActivity(other))).toBe('<at>Teams TestBot</at> Hello everyone');
    // A malformed mention entity (no text) removes nothing and breaks nothing.
    const malformed = structuredClone(doc.groupChatMessage);
    delete malformed.entities[0].text;
    expect(messageText(parsedActivity(malformed))).toBe('<at>Teams TestBot</at> Hello everyone');
  });

  it('a group chat: its own thread, the tenant from the conversation', () => {
    const envelope = envelopeOf(doc.groupChatMessage);
    expect(envelope.thread).toBe('19:d77be72390a1416e9644261e9064fa00@thread.skype');
    expect(envelope.from).toEqual({
      id: 'b130c271-d2eb-45f9-83ab-9eb3fe3788bc',
      name: 'Olo Brockhouse',
      tenant: '0d9b645f-597b-41f0-a2a3-ef103fbd91bb',
    });
    expect(envelope.meta.conversationType).toBe('groupChat');
  });

  it('the bot added to a team starts a session in that channel, with a reference that replies to nothing', () => {
    const activity = structuredClone(doc.botAddedToTeam);
    const envelope = envelopeOf(activity);
    expect(envelope).toMatchObject({
      id: 'teams:19:0b7f32667e064dd9b25d7969801541f4@thread.tacv2|start|f:0b9079f4-d4d3-3d8e-b883-798298053c7e',
      kind: 'start',
      text: '',
      from: { id: 'eddfa9d4-346e-4cce-a18f-fa6261ad776b', tenant: 'b28fdbfd-2b78-4f93-b0f8-8881793f0f8f' },
      thread: '19:0b7f32667e064dd9b25d7969801541f4@thread.tacv2',
      meta: {
        conversationType: 'channel',
        teamId: '19:zFLSDFWsesfzcmKArqKJ-65aOXJz@sgf462H2wz41@thread.tacv2',
      },
    });
    expect(envelope.replyTo).not.toHaveProperty('activityId');
    expect(replyToIdFor(envelope.id, envelope.thread!)).toBeUndefined();
  });

  it('the bot added to a 1:1 chat starts a session (the documented placeholders and all)', () => {
    const activity = structuredClone(doc.botAddedToPersonalChat);
    activity.membersAdded[0].id = activity.recipient.id; // the documented "<BOT ID>" placeholders, made equal
    expect(envelopeOf(activity)).toMatchObject({ kind: 'start', from: { id: '***' }, thread: '***' });
  });

  it('conversation updates that do not add the bot, invokes and other types are ignored', () => {
    expect(parsed(doc.teamMemberRemoved)).toMatchObject({
      kind: 'ignore',
      reason: 'conversation update (teamMemberRemoved) that does not add the bot',
    });
    // Documented with placeholders that do not match: the bot is not among the members added.
    expect(parsed(doc.botAddedToPersonalChat).kind).toBe('ignore');
    expect(parsed(doc.groupChatInvoke)).toMatchObject({
      kind: 'ignore',
      reason: 'activity type "invoke" is not handled',
    });
    for (const type of ['typing', 'messageReaction', 'installationUpdate', 'event', 'somethingNew'])
      expect(parsed({ ...doc.personalMessage, type }).kind).toBe('ignore');
  });

  it("a card's Action.Execute press (adaptiveCard/action invoke) is the person's message with the button's value", () => {
    const envelope = envelopeOf(doc.cardActionInvoke);
    const conversationId = doc.cardActionInvoke.conversation.id;
    expect(envelope).toMatchObject({
      id: `teams:${conversationId}|${doc.cardActionInvoke.id}`,
      kind: 'message',
      channel: 'teams',
      from: { id: '7faf8ab2-3d56-4244-b585-20c8a42ed2b8', name: 'Megan Bowen' },
      thread: conversationId,
      text: 'buy k200',
      attachments: [],
      replyTo: { activityId: doc.cardActionInvoke.id, serviceUrl: 'https://smba.trafficmanager.net/amer/' },
      meta: { cardAction: { verb: 'buy', invoke: 'adaptiveCard/action' }, value: doc.cardActionInvoke.value },
    });
    // Without data.value the verb is the value; with neither, there is nothing to read.
    const verbOnly = structuredClone(doc.cardActionInvoke);
    verbOnly.value.action.data = { orderId: 42 };
    expect(parsed(verbOnly)).toMatchObject({ kind: 'action', value: 'buy', verb: 'buy' });
    const nothing = structuredClone(doc.cardActionInvoke);
    nothing.value.action = { type: 'Action.Execute', data: { orderId: 42 } };
    expect(parsed(nothing)).toMatchObject({ kind: 'ignore' });
    expect(parsed({ ...doc.cardActionInvoke, value: {} })).toMatchObject({ kind: 'ignore' });
  });

  it('what is not an activity, or lacks what answering needs, is refused naming the field', () => {
    const refuse = (body: unknown, field: RegExp) => {
      expect(() => parsed(body)).toThrow(NotAnActivityError);
      expect(() => parsed(body)).toThrow(field);
    };
    refuse(null, /not a Bot Framework activity/);
    refuse([], /not a Bot Framework activity/);
    refuse({ text: 'hi' }, /type/);
    refuse({ type: '' }, /type/);
    refuse(doc.channelMessage, /\bid\b/); // the documented example has no id
    const without = (field: string) => {
      const copy = structuredClone(doc.personalMessage);
      delete copy[field];
      return copy;
    };
    refuse(without('conversation'), /conversation/);
    refuse(without('serviceUrl'), /serviceUrl/);
    refuse(without('from'), /from/);
    refuse(without('recipient'), /recipient/);
    refuse({ ...doc.personalMessage, serviceUrl: 'file:///etc/passwd' }, /serviceUrl/);
  });
});

describe('Teams envelope ids and reply threading', () => {
  it('the same activity id in two conversations is two envelopes', () => {
    const a = envelopeOf(doc.personalMessage);
    const b = envelopeOf({ ...doc.personalMessage, conversation: { id: 'a:another-chat' } });
    expect(a.id).not.toBe(b.id);
  });

  it('a reply answers the activity its envelope came from', () => {
    const conversation = '19:abc@thread.tacv2;messageid=1700000000000';
    expect(replyToIdFor(`teams:${conversation}|1700000000123`, conversation)).toBe('1700000000123');
    // Activity ids may contain the separator (Direct Line: "<conversation>|0000001").
    expect(replyToIdFor('teams:conv-1|conv-1|0000001', 'conv-1')).toBe('conv-1|0000001');
    expect(replyToIdFor(`teams:${conversation}|start|f:1`, conversation)).toBeUndefined();
    expect(replyToIdFor('teams:other|1700000000123', conversation)).toBeUndefined();
    expect(replyToIdFor('api:123', conversation)).toBeUndefined();
  });
});

function parsedActivity(body: unknown): InboundActivity {
  const p = parsed(body);
  if (p.kind === 'ignore') throw new Error('ignored');
  return p.activity;
}
