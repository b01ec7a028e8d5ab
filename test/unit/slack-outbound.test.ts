import { describe, expect, it } from 'vitest';
import { MAX_BLOCKS, planReply } from '../../adapters/slack/outbound.ts';
import { cardsAsText } from '../../src/cards/card.ts';
import type { OutboundReply } from '../../src/delivery/sender.ts';

const to = { teamId: 'T123ABC456', channel: 'D024BE91L' };
const FILE_ID = '0b7a6c1e-2f4d-4e8a-9c3b-5d6e7f8a9b0c';

const cardReply = (cards: OutboundReply['payload']['cards'] & unknown[], text?: string): OutboundReply => ({
  seq: 3,
  text: text ?? cardsAsText(cards as never),
  payload: { cards, ...(text === undefined ? { textIsFallback: true } : {}) },
});

describe('Slack replies: cards and files', () => {
  it('a stored image is shown only by an https link Slack can fetch; an https URL image as it is', () => {
    const card = { title: 'K-200', image: { fileId: FILE_ID, name: 'kettle.png' }, buttons: [] };
    const without = planReply(cardReply([card]), to, () => undefined);
    expect(without.calls[0]!.blocks!.map((b) => b.type)).toEqual(['section']);
    const withLink = planReply(
      cardReply([card]),
      to,
      (id) => `https://bots.example.com/api/files/${id}?exp=1&sig=x`,
    );
    expect(withLink.calls[0]!.blocks![1]).toEqual({
      type: 'image',
      image_url: `https://bots.example.com/api/files/${FILE_ID}?exp=1&sig=x`,
      alt_text: 'K-200',
    });
    const byUrl = planReply(
      cardReply([{ text: 'A kettle', image: { url: 'https://cdn.example.com/k.png' }, buttons: [] }]),
      to,
    );
    expect(byUrl.calls[0]!.blocks![1]).toMatchObject({
      type: 'image',
      image_url: 'https://cdn.example.com/k.png',
    });
  });

  it("the bot's own text goes above the cards; the numbered stand-in text is only the notification", () => {
    const card = { title: 'K-200', buttons: [{ title: 'Buy', value: 'buy' }] };
    const own = planReply(cardReply([card], 'Our best <kettle>'), to);
    expect(own.calls).toHaveLength(1);
    expect(own.calls[0]!.blocks!.map((b) => b.type)).toEqual(['section', 'divider', 'section', 'actions']);
    expect(own.calls[0]!.blocks![0]).toEqual({
      type: 'section',
      text: { type: 'mrkdwn', text: 'Our best &lt;kettle&gt;' },
    });
    const fallback = planReply(cardReply([card]), to);
    expect(fallback.calls[0]!.text).toBe('K-200\n1. Buy');
    expect(fallback.calls[0]!.blocks!.map((b) => b.type)).toEqual(['section', 'actions']);
  });

  it('a carousel stops at 50 blocks; files are uploads after the text, never text of their own', () => {
    const many = Array.from({ length: 20 }, (_, i) => ({
      title: `Kettle ${i}`,
      text: 'Boils.',
      buttons: [{ title: 'Buy', value: `buy ${i}` }],
    }));
    const plan = planReply(cardReply(many), to);
    expect(plan.calls[0]!.blocks!.length).toBeLessThanOrEqual(MAX_BLOCKS);
    const files = planReply(
      {
        seq: 4,
        text: 'kettle.png',
        payload: {
          attachments: [{ type: 'image/png', name: 'kettle.png', fileId: FILE_ID }],
          textIsFallback: true,
        },
      },
      to,
    );
    expect(files.calls).toEqual([]);
    expect(files.uploads).toEqual([{ fileId: FILE_ID, name: 'kettle.png' }]);
    const captioned = planReply(
      {
        seq: 5,
        text: 'Your invoice',
        payload: { attachments: [{ type: 'application/pdf', fileId: FILE_ID }] },
      },
      to,
    );
    expect(captioned.calls.map((c) => c.text)).toEqual(['Your invoice']);
    expect(captioned.uploads).toEqual([{ fileId: FILE_ID }]);
  });
});
