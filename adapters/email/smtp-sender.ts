import nodemailer, { type Transporter } from 'nodemailer';
import type { ChannelQueryable } from '../../src/channels/declaration.ts';
import {
  type ChannelSender,
  type OutboundBatch,
  SendError,
  type SendOutcome,
} from '../../src/delivery/sender.ts';
import { payloadCards } from '../../src/files/client-view.ts';
import type { FileStore } from '../../src/files/store.ts';
import type { Logger } from '../../src/logger.ts';
import type { EmailConfig } from './config.ts';
import { composeReply, type StoredMailFile } from './message/compose.ts';
import { type EmailReplyTo, EmailReplyToSchema } from './reply-to.ts';
import { inboundReplyTo, knownMessage, recordOutbound } from './store.ts';

const SMTP_CONNECTION_TIMEOUT_MS = 15_000;
const SMTP_GREETING_TIMEOUT_MS = 15_000;
const SMTP_SOCKET_TIMEOUT_MS = 60_000;

/** Network-level failures: the server was not reached or dropped us; another try may succeed. */
const TRANSIENT_CODES = new Set([
  'ECONNECTION',
  'ETIMEDOUT',
  'ESOCKET',
  'EDNS',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETLS',
  'EPROTOCOL',
]);

export function smtpTransport(config: EmailConfig): Transporter {
  const { smtp } = config;
  const auth = smtp.user
    ? smtp.accessToken
      ? { type: 'OAuth2' as const, user: smtp.user, accessToken: smtp.accessToken }
      : { user: smtp.user, pass: smtp.password ?? '' }
    : undefined;
  // One connection per mail, no pool: the hub stops adapters before it lets the last sends
  // finish, and a pool closed under them would fail those sends.
  return nodemailer.createTransport({
    host: smtp.host,
    port: smtp.port,
    secure: smtp.tls === 'implicit',
    requireTLS: smtp.tls === 'starttls',
    ignoreTLS: smtp.tls === 'none',
    ...(auth ? { auth } : {}),
    connectionTimeout: SMTP_CONNECTION_TIMEOUT_MS,
    greetingTimeout: SMTP_GREETING_TIMEOUT_MS,
    socketTimeout: SMTP_SOCKET_TIMEOUT_MS,
  });
}

/**
 * SMTP's verdict on a failed send: 5xx is a permanent rejection (bad recipient, policy), 4xx
 * and connection failures are worth retrying. Never includes credentials in the message.
 */
export function toSendError(err: unknown, sent: SendOutcome[] = []): SendError {
  const e = err as { code?: string; responseCode?: number; message?: string };
  const code = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  let retryable: boolean;
  if (code !== undefined) retryable = code < 500;
  else retryable = e.code === undefined || TRANSIENT_CODES.has(e.code);
  const what = code !== undefined ? `SMTP ${code}` : (e.code ?? 'SMTP error');
  return new SendError(`${what}: ${e.message ?? String(err)}`, { retryable, sent, cause: err });
}

/**
 * The email channel's way out: the replies of one turn become one mail answering the mail that
 * started the turn, threaded with In-Reply-To and References.
 */
export class SmtpSender implements ChannelSender {
  constructor(
    private readonly o: {
      config: EmailConfig;
      /** The database and logger, known once the hub has set the adapter up. */
      host: () => { store: ChannelQueryable; logger: Logger; files?: FileStore };
      transport: () => Transporter;
    },
  ) {}

  async send(batch: OutboundBatch): Promise<SendOutcome[]> {
    const { store, logger, files } = this.o.host();
    const replyTo = await this.replyTo(store, batch);
    const { config } = this.o;
    const composed = composeReply({
      files: files ? await storedFiles(files, batch) : new Map(),
      replies: batch.replies,
      replyTo,
      from: config.from,
      messageIdDomain: config.messageIdDomain,
      sessionId: batch.session.id,
    });
    try {
      await this.o.transport().sendMail(composed.mail);
    } catch (err) {
      throw toSendError(err);
    }
    const thread = (await knownMessage(store, replyTo.messageId).catch(() => undefined))?.thread;
    await recordOutbound(store, {
      messageId: composed.messageId,
      thread: thread ?? replyTo.references[0] ?? replyTo.messageId,
      envelopeId: batch.inReplyTo,
      sessionId: batch.session.id,
      suggestions: composed.suggestions,
    }).catch((err: Error) =>
      // The mail is out; failing here must not send it again. Only threading help is lost.
      logger.warn({ event: 'email.record_outbound_failed', sessionId: batch.session.id, err: err.message }),
    );
    logger.info({
      event: 'email.sent',
      sessionId: batch.session.id,
      envelopeId: batch.inReplyTo,
      replies: batch.replies.length,
    });
    return batch.replies.map((r) => ({ seq: r.seq, channelMessageId: composed.messageId, status: 'sent' }));
  }

  /**
   * The answered mail's headers: the session's latest replyTo when it is the mail this turn
   * answers, else the one recorded with that mail (a later mail arrived before this was sent).
   */
  private async replyTo(store: ChannelQueryable, batch: OutboundBatch): Promise<EmailReplyTo> {
    const latest = EmailReplyToSchema.safeParse(batch.session.replyTo);
    if (latest.success && latest.data.envelopeId === batch.inReplyTo) return latest.data;
    // A reply that answers no mail (an outbound envelope's: another session, an agent; the
    // session's own end, `email:<session id>:end`: ON SESSION END, the rating ask) joins the latest thread.
    const ownTurn = batch.inReplyTo.startsWith(`email:${batch.session.id}:`);
    if (latest.success && (ownTurn || !batch.inReplyTo.startsWith('email:'))) {
      // A thread the business started: once its first mail is out, later ones answer it (a
      // retry of that first mail's own send keeps its Message-ID).
      const first = latest.data.newThread ? await knownMessage(store, latest.data.messageId) : undefined;
      if (first && first.envelopeId !== batch.inReplyTo) return { ...latest.data, newThread: false };
      return latest.data;
    }
    const recorded = EmailReplyToSchema.safeParse(await inboundReplyTo(store, batch.inReplyTo));
    if (recorded.success) return recorded.data;
    throw new SendError(`no reply address recorded for ${batch.inReplyTo}`, { retryable: false });
  }
}

/** The stored files a batch's replies carry (attachments and card images), ready to stream into the mail. */
async function storedFiles(files: FileStore, batch: OutboundBatch): Promise<Map<string, StoredMailFile>> {
  const ids = new Set<string>();
  for (const r of batch.replies) {
    for (const a of (r.payload.attachments ?? []) as { fileId?: string }[]) if (a.fileId) ids.add(a.fileId);
    for (const c of payloadCards(r.payload.cards))
      if (c.image && 'fileId' in c.image) ids.add(c.image.fileId);
  }
  const found = await files.getMany([...ids]);
  return new Map(found.map((f) => [f.id, { name: f.name, type: f.type, open: () => files.stream(f) }]));
}
