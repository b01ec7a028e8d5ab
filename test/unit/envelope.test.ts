import { describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import {
  attachmentName,
  envelopeId,
  MAX_ATTACHMENT_NAME,
  nativeSessionKey,
  parseEnvelope,
  sessionLane,
} from '../../src/envelope.ts';

const base = {
  id: 'whatsapp:wamid.ABC',
  channel: 'whatsapp',
  bot: 'default',
  from: { id: '+5511999999999', name: 'Ana' },
  text: 'oi',
  receivedAt: '2026-11-21T10:00:00.000Z',
};

describe('envelope', () => {
  it('fills defaults: a message with no attachments and empty meta', () => {
    expect(parseEnvelope(base)).toEqual({ ...base, kind: 'message', attachments: [], meta: {} });
  });

  it('names every bad field', () => {
    try {
      parseEnvelope({ ...base, channel: 'fax', bot: 'Bad Name', receivedAt: 'yesterday' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ZodError);
      const paths = (err as ZodError).issues.map((i) => i.path.join('.'));
      expect(paths).toEqual(expect.arrayContaining(['channel', 'bot', 'receivedAt']));
    }
  });

  it('builds ids and session keys from channel-native parts', () => {
    expect(envelopeId('teams', 'act-1')).toBe('teams:act-1');
    expect(nativeSessionKey({ from: { id: 'a@b.c' }, thread: '<root@b.c>' })).toBe('a@b.c#<root@b.c>');
    expect(nativeSessionKey({ from: { id: '+1' } })).toBe('+1');
    expect(sessionLane({ bot: 'support', channel: 'email', from: { id: 'a@b.c' }, thread: 't' })).toBe(
      'support|email|a@b.c#t',
    );
  });
});

describe('attachment names from platforms', () => {
  it('are kept up to the limit and cut past it, never inside a character', () => {
    const fits = 'a'.repeat(MAX_ATTACHMENT_NAME);
    expect(attachmentName(fits)).toBe(fits);
    expect(attachmentName(`${fits}.pdf`)).toBe(fits);
    // A pair (😀) across the limit is dropped whole, not left as a lone surrogate.
    const straddling = `${'a'.repeat(MAX_ATTACHMENT_NAME - 1)}😀.pdf`;
    expect(attachmentName(straddling)).toBe('a'.repeat(MAX_ATTACHMENT_NAME - 1));
  });
});
