import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEmailConfig } from '../../adapters/email/config.ts';
import { createEmailAdapter } from '../../adapters/email/index.ts';
import type { EmailReplyTo } from '../../adapters/email/reply-to.ts';
import { SmtpSender, smtpTransport } from '../../adapters/email/smtp-sender.ts';
import { knownMessage, recordInbound } from '../../adapters/email/store.ts';
import type { OutboundBatch } from '../../src/delivery/sender.ts';
import { SendError } from '../../src/delivery/sender.ts';
import type { AdapterHost } from '../../src/ports.ts';
import type { Db } from '../../src/store/db.ts';
import type { SessionRecord } from '../../src/store/records.ts';
import { openTestDb, silentLogger } from '../helpers/database.ts';
import { freePort } from '../helpers/free-port.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import { until } from '../helpers/until.ts';

function replyTo(n: number, address = 'alice@example.org'): EmailReplyTo {
  return {
    messageId: `in.${n}@example.org`,
    references: ['root@example.org'],
    subject: 'Re: Hello',
    to: { address },
    mailbox: 'INBOX',
    bot: 'default',
    envelopeId: `email:in.${n}@example.org`,
  };
}

function session(id: string, latest: EmailReplyTo): SessionRecord {
  const now = new Date().toISOString();
  return {
    id,
    bot: 'default',
    channel: 'email',
    nativeKey: `${latest.to.address}#root@example.org`,
    userId: null,
    authLevel: 'anonymous',
    replyTo: latest,
    meta: {},
    createdAt: now,
    lastActivityAt: now,
    expiresAt: null,
    endedAt: null,
    messageCount: 1,
    lastSeq: 3,
  };
}

describe('SMTP sender against a real SMTP server', () => {
  const smtp = new SmtpSink();
  let db: Db;
  let cleanup: () => Promise<void>;
  let sender: SmtpSender;
  const transports: { close(): void }[] = [];

  const senderFor = (port: number) => {
    const config = loadEmailConfig({
      EMAIL_IMAP_HOST: '127.0.0.1',
      EMAIL_IMAP_USER: 'u',
      EMAIL_IMAP_PASSWORD: 'p',
      EMAIL_SMTP_HOST: '127.0.0.1',
      EMAIL_SMTP_PORT: String(port),
      EMAIL_SMTP_TLS: 'none',
      EMAIL_SMTP_USER: 'relay-user',
      EMAIL_SMTP_PASSWORD: 'relay-password',
      EMAIL_FROM: 'Support <support@switchboard.test>',
    });
    const transport = smtpTransport(config);
    transports.push(transport);
    return new SmtpSender({
      config,
      host: () => ({ store: db, logger: silentLogger }),
      transport: () => transport,
    });
  };

  beforeAll(async () => {
    ({ db, cleanup } = await openTestDb('postgres'));
    await smtp.start();
    sender = senderFor(smtp.port);
  });

  afterAll(async () => {
    for (const t of transports) t.close();
    await smtp.stop();
    await cleanup?.();
  });

  it('sends the replies of a turn as one mail and records it', async () => {
    const sessionId = '00000000-0000-4000-8000-000000000001';
    const batch: OutboundBatch = {
      session: session(sessionId, replyTo(1)),
      inReplyTo: 'email:in.1@example.org',
      replies: [
        { seq: 2, text: 'Hello!', payload: {} },
        { seq: 3, text: 'Pick one', payload: { suggestions: [{ text: 'A', value: 'a' }] } },
      ],
    };
    const outcomes = await sender.send(batch);
    expect(outcomes).toEqual([
      { seq: 2, channelMessageId: `sb.${sessionId}.2@switchboard.test`, status: 'sent' },
      { seq: 3, channelMessageId: `sb.${sessionId}.2@switchboard.test`, status: 'sent' },
    ]);
    const [mail] = await smtp.waitFor('alice@example.org');
    expect(mail!.mailFrom).toBe('support@switchboard.test');
    expect(mail!.parsed.text).toBe('Hello!\n\nPick one\n\n1. A\n\n(Reply with the number of your choice.)\n');
    expect(mail!.parsed.headers.get('x-auto-response-suppress')).toBe('All');
    const recorded = await knownMessage(db, `sb.${sessionId}.2@switchboard.test`);
    expect(recorded).toMatchObject({
      direction: 'out',
      thread: 'root@example.org',
      envelopeId: 'email:in.1@example.org',
      sessionId,
      suggestions: [{ text: 'A', value: 'a' }],
    });
  });

  it('answers the mail of the batch even when a later mail is the session’s latest', async () => {
    const early = replyTo(2, 'bob@example.org');
    await recordInbound(db, {
      messageId: early.messageId,
      thread: 'root@example.org',
      envelopeId: early.envelopeId,
      mailbox: 'u@127.0.0.1:993/inbox',
      uidValidity: 1,
      uid: 2,
      replyTo: early,
      noReply: null,
    });
    await sender.send({
      session: session('00000000-0000-4000-8000-000000000002', replyTo(3, 'bob@example.org')),
      inReplyTo: early.envelopeId,
      replies: [{ seq: 2, text: 'For the earlier one', payload: {} }],
    });
    const [mail] = await smtp.waitFor('bob@example.org');
    expect(mail!.parsed.inReplyTo).toBe('<in.2@example.org>');
  });

  it('refuses to send when nothing says whom to answer (a mail recorded as not to be answered)', async () => {
    await recordInbound(db, {
      messageId: 'auto.4@example.org',
      thread: 'auto.4@example.org',
      envelopeId: 'email:auto.4@example.org',
      mailbox: 'u@127.0.0.1:993/inbox',
      uidValidity: 1,
      uid: 4,
      replyTo: null,
      noReply: 'auto-submitted',
    });
    const err = await sender
      .send({
        session: session('00000000-0000-4000-8000-000000000004', replyTo(1)),
        inReplyTo: 'email:auto.4@example.org',
        replies: [{ seq: 2, text: 'x', payload: {} }],
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SendError);
    expect((err as SendError).retryable).toBe(false);
  });

  it('turns a 5xx rejection into a final failure and a 4xx into a retry', async () => {
    smtp.rcptPolicy = (address) =>
      address === 'gone@example.org'
        ? { code: 550, message: '5.1.1 <gone@example.org>: Recipient address rejected: User unknown' }
        : address === 'busy@example.org'
          ? { code: 451, message: '4.7.1 Greylisted, try again later' }
          : undefined;
    try {
      const send = async (address: string): Promise<SendError> =>
        (await sender
          .send({
            session: session('00000000-0000-4000-8000-000000000005', { ...replyTo(5, address) }),
            inReplyTo: 'email:in.5@example.org',
            replies: [{ seq: 2, text: 'x', payload: {} }],
          })
          .catch((e: unknown) => e)) as SendError;
      const gone = await send('gone@example.org');
      expect(gone).toBeInstanceOf(SendError);
      expect(gone.retryable).toBe(false);
      expect(gone.message).toMatch(/^SMTP 550/);
      const busy = await send('busy@example.org');
      expect(busy).toBeInstanceOf(SendError);
      expect(busy.retryable).toBe(true);
      expect(busy.message).toMatch(/^SMTP 451/);
      expect(busy.message).not.toContain('relay-password');
    } finally {
      smtp.rcptPolicy = () => undefined;
    }
  });

  it('still sends after the adapter was stopped (the hub stops adapters before the last deliveries)', async () => {
    const adapter = createEmailAdapter(
      loadEmailConfig({
        EMAIL_IMAP_HOST: '127.0.0.1',
        EMAIL_IMAP_USER: 'u',
        EMAIL_IMAP_PASSWORD: 'p',
        EMAIL_SMTP_HOST: '127.0.0.1',
        EMAIL_SMTP_PORT: String(smtp.port),
        EMAIL_SMTP_TLS: 'none',
        EMAIL_FROM: 'Support <support@switchboard.test>',
      }),
    );
    await adapter.setup!({
      store: db,
      logger: silentLogger,
      bots: { has: () => true },
    } as unknown as AdapterHost);
    const send = (n: number, address: string) =>
      adapter.sender!.send({
        session: session(`00000000-0000-4000-8000-00000000010${n}`, replyTo(n, address)),
        inReplyTo: `email:in.${n}@example.org`,
        replies: [{ seq: 2, text: `mail ${n}`, payload: {} }],
      });
    smtp.dataDelayMs = 300;
    try {
      // One mail on its way while the adapter stops, one sent after.
      const inFlight = send(7, 'during@example.org');
      await until(
        () => smtp.receiving,
        (n) => n > 0,
        10_000,
        10,
      );
      await adapter.stop!();
      await inFlight;
      await send(8, 'after@example.org');
    } finally {
      smtp.dataDelayMs = 0;
    }
    expect((await smtp.waitFor('during@example.org'))[0]!.parsed.text).toBe('mail 7\n');
    expect((await smtp.waitFor('after@example.org'))[0]!.parsed.text).toBe('mail 8\n');
  });

  it('retries when the SMTP server cannot be reached', async () => {
    const down = senderFor(await freePort());
    const err = (await down
      .send({
        session: session('00000000-0000-4000-8000-000000000006', replyTo(6)),
        inReplyTo: 'email:in.6@example.org',
        replies: [{ seq: 2, text: 'x', payload: {} }],
      })
      .catch((e: unknown) => e)) as SendError;
    expect(err).toBeInstanceOf(SendError);
    expect(err.retryable).toBe(true);
  });
});
