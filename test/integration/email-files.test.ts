import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEmailConfig } from '../../adapters/email/config.ts';
import type { EmailReplyTo } from '../../adapters/email/reply-to.ts';
import { SmtpSender, smtpTransport } from '../../adapters/email/smtp-sender.ts';
import { FileStore } from '../../src/files/store.ts';
import { DEFAULT_ALLOWED_FILE_TYPES } from '../../src/files/types.ts';
import type { Db } from '../../src/store/db.ts';
import type { SessionRecord } from '../../src/store/records.ts';
import { openTestDb, silentLogger } from '../helpers/database.ts';
import { pdfBytes } from '../helpers/files.ts';
import { REPO_ROOT } from '../helpers/hub.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';

const KETTLE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));
const MB = 1024 * 1024;

function replyTo(address: string): EmailReplyTo {
  return {
    messageId: `in.${randomUUID()}@example.org`,
    references: ['root@example.org'],
    subject: 'Re: Kettles',
    to: { address },
    mailbox: 'INBOX',
    bot: 'default',
    envelopeId: `email:${randomUUID()}`,
  };
}

function session(latest: EmailReplyTo): SessionRecord {
  const now = new Date().toISOString();
  return {
    id: randomUUID(),
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

/** A bot's files and cards by email, through a real SMTP server: real attachments and an HTML part. */
describe('email: files and cards out (SMTP)', () => {
  const smtp = new SmtpSink();
  let db: Db;
  let cleanup: () => Promise<void>;
  let files: FileStore;
  let sender: SmtpSender;
  let transport: ReturnType<typeof smtpTransport>;

  beforeAll(async () => {
    ({ db, cleanup } = await openTestDb('postgres'));
    await smtp.start();
    files = await new FileStore(db).init();
    const config = loadEmailConfig({
      EMAIL_IMAP_HOST: '127.0.0.1',
      EMAIL_IMAP_USER: 'u',
      EMAIL_IMAP_PASSWORD: 'p',
      EMAIL_SMTP_HOST: '127.0.0.1',
      EMAIL_SMTP_PORT: String(smtp.port),
      EMAIL_SMTP_TLS: 'none',
      EMAIL_FROM: 'Support <support@switchboard.test>',
    });
    transport = smtpTransport(config);
    sender = new SmtpSender({
      config,
      host: () => ({ store: db, logger: silentLogger, files }),
      transport: () => transport,
    });
  });
  afterAll(async () => {
    transport?.close();
    await smtp.stop();
    await cleanup?.();
  });

  const put = (data: Buffer, name: string) =>
    files.put(data, {
      name,
      bot: 'default',
      origin: 'bot',
      maxBytes: 20 * MB,
      allowedTypes: DEFAULT_ALLOWED_FILE_TYPES,
    });

  it('SHOW IMAGE and SEND FILE arrive as real attachments whose bytes are the stored bytes', async () => {
    const image = await put(KETTLE, 'kettle.png');
    const invoice = pdfBytes(9 * MB, 'mail');
    const pdf = await put(invoice, 'invoice.pdf');
    const to = replyTo('ana@example.org');
    await sender.send({
      session: session(to),
      inReplyTo: to.envelopeId,
      replies: [
        {
          seq: 2,
          text: 'kettle.png',
          payload: {
            attachments: [{ type: image.type, name: image.name, size: image.size, fileId: image.id }],
            textIsFallback: true,
          },
        },
        {
          seq: 3,
          text: 'Your invoice',
          payload: { attachments: [{ type: pdf.type, name: pdf.name, size: pdf.size, fileId: pdf.id }] },
        },
      ],
    });
    const [mail] = await smtp.waitFor('ana@example.org');
    const attachments = mail!.parsed.attachments.map((a) => ({
      name: a.filename,
      type: a.contentType,
      content: a.content,
    }));
    expect(attachments.map((a) => [a.name, a.type])).toEqual([
      ['kettle.png', 'image/png'],
      ['invoice.pdf', 'application/pdf'],
    ]);
    expect(attachments[0]!.content.equals(KETTLE)).toBe(true);
    expect(attachments[1]!.content.equals(invoice)).toBe(true);
    expect(mail!.parsed.text).toBe('kettle.png\n\nYour invoice\n');
  });

  it('a card is an HTML part with its image inline and a text alternative whose numbers answer it', async () => {
    const image = await put(KETTLE, 'kettle.png');
    const to = replyTo('ben@example.org');
    const card = {
      title: 'Kettle <K-200>',
      text: '1.7 litres.',
      image: { fileId: image.id, name: 'kettle.png', type: 'image/png' },
      buttons: [
        { title: 'Buy it', value: 'buy k200' },
        { title: 'Manual', url: 'https://example.com/k200' },
      ],
    };
    const outcomes = await sender.send({
      session: session(to),
      inReplyTo: to.envelopeId,
      replies: [
        {
          seq: 2,
          text: 'Kettle <K-200>\n1.7 litres.\n1. Buy it\nManual: https://example.com/k200',
          payload: { cards: [card], textIsFallback: true },
        },
      ],
    });
    const [mail] = await smtp.waitFor('ben@example.org');
    expect(mail!.parsed.text).toBe(
      'Kettle <K-200>\n1.7 litres.\n1. Buy it\nManual: https://example.com/k200\n\n(Reply with the number of your choice.)\n',
    );
    const html = String(mail!.parsed.html);
    expect(html).toContain('<h3 style="margin:8px 0 4px">Kettle &lt;K-200&gt;</h3>');
    expect(html).toContain('<b>1.</b> Buy it');
    expect(html).toContain('<a href="https://example.com/k200">Manual</a>');
    // The image travels as a related part (Content-ID), which mailparser shows in place.
    expect(html).toContain(`src="data:image/png;base64,${KETTLE.toString('base64')}"`);
    expect(outcomes[0]!.channelMessageId).toBeDefined();
  });
});
