import { describe, expect, it } from 'vitest';
import { isOpenableUrl, toAgentMessage } from '../../src/http/agent-api.ts';
import type { MessageRecord } from '../../src/store/records.ts';

const OWN = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';

const row = (payload: MessageRecord['payload'], content = ''): MessageRecord => ({
  sessionId: '33333333-3333-4333-8333-333333333333',
  seq: 2,
  role: 'user',
  content,
  envelopeId: null,
  inReplyTo: null,
  deliveryStatus: 'delivered',
  deliveryAttempts: 0,
  deliveryError: null,
  channelMessageId: null,
  payload,
  createdAt: '2026-12-07T20:00:00.000Z',
});

/** Signs links for this conversation's file only, as the route does. */
const link = (id: string) => (id === OWN ? `/api/files/${id}?exp=1&sig=s` : undefined);

describe('a history row as the agent API shows its files', () => {
  it('links the conversation’s own files only, and never a link that is not http(s)', () => {
    const m = toAgentMessage(
      row({
        attachments: [
          { type: 'image/png', name: 'photo.png', size: 10, fileId: OWN },
          { type: 'application/pdf', name: 'elsewhere.pdf', size: 5, fileId: OTHER },
          { type: 'image', url: 'javascript:alert(1)' },
          { type: 'image', url: 'data:image/png;base64,AAAA' },
          { type: 'image', url: '//evil.example/x.png' },
          { type: 'image', url: 'https://cdn.example/x.png' },
        ],
      }),
      link,
    );
    expect(m.attachments).toEqual([
      { type: 'image/png', name: 'photo.png', size: 10, url: `/api/files/${OWN}?exp=1&sig=s`, file_id: OWN },
      { type: 'application/pdf', name: 'elsewhere.pdf', size: 5, file_id: OTHER },
      { type: 'image' },
      { type: 'image' },
      { type: 'image' },
      { type: 'image', url: 'https://cdn.example/x.png' },
    ]);
  });

  it('tells what happened to a file the hub refused, with no link', () => {
    const m = toAgentMessage(
      row({
        refusedAttachments: [
          {
            type: 'application/pdf',
            name: 'huge.pdf',
            size: 11_000_000,
            reason: 'too_large',
            message: 'too big',
          },
          { type: 'image/jpeg', reason: 'unavailable' },
        ],
      }),
      link,
    );
    expect(m.refused_attachments).toEqual([
      {
        type: 'application/pdf',
        name: 'huge.pdf',
        size: 11_000_000,
        reason: 'too_large',
        message: 'too big',
      },
      { type: 'image/jpeg', reason: 'unavailable' },
    ]);
    expect(m.attachments).toBeUndefined();
  });

  it('gives the bot’s cards with their picture’s link, and says when the text only stands for them', () => {
    const m = toAgentMessage(
      row(
        {
          cards: [
            {
              title: 'Kettle',
              image: { fileId: OWN, name: 'kettle.png' },
              buttons: [
                { title: 'Buy', value: 'buy' },
                { title: 'Manual', url: 'https://example.com/m' },
              ],
            },
          ],
          textIsFallback: true,
        },
        'Kettle\n1. Buy',
      ),
      link,
    );
    expect(m.cards).toEqual([
      {
        title: 'Kettle',
        image: { url: `/api/files/${OWN}?exp=1&sig=s`, name: 'kettle.png' },
        buttons: [
          { title: 'Buy', value: 'buy' },
          { title: 'Manual', url: 'https://example.com/m' },
        ],
      },
    ]);
    expect(m.text_is_fallback).toBe(true);
  });

  it('accepts http(s) and paths on the hub as links, nothing else', () => {
    for (const ok of ['https://a.example/x', 'http://a.example/x', '/api/files/x?exp=1&sig=s'])
      expect(isOpenableUrl(ok)).toBe(true);
    for (const bad of [
      'javascript:alert(1)',
      'JAVASCRIPT:x',
      'data:text/html,x',
      '//evil.example',
      '/\\evil',
      'file:///etc/passwd',
      '',
    ])
      expect(isOpenableUrl(bad)).toBe(false);
  });
});
