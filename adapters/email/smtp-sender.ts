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
import { ACCESS_TOKEN_FILE_ERROR } from './access-token.ts';
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

/**
 * nodemailer's codes for a login that failed or could not be made (EAUTH: refused; ENOAUTH: no
 * credentials; EOAUTH2: no token), and ours for an access token file that could not be read:
 * the hub's own credential, never the recipient's fault.
 */
const CREDENTIAL_CODES = new Set(['EAUTH', 'ENOAUTH', 'EOAUTH2', ACCESS_TOKEN_FILE_ERROR]);
/** Replies that refuse our credential or ask for one (RFC 4954: 454, 530, 534, 535, 538). */
const CREDENTIAL_REPLIES = new Set([454, 530, 534, 535, 538]);
/** The commands whose 5xx refuses this mail or its recipient; a 5xx anywhere else refuses us. */
const MAIL_COMMANDS = new Set(['RCPT TO', 'DATA']);

/**
 * A transport for one connection's worth of mail. `accessToken`, when given, is the token read
 * from EMAIL_SMTP_ACCESS_TOKEN_FILE for this send; else EMAIL_SMTP_ACCESS_TOKEN or the password.
 */
export function smtpTransport(config: EmailConfig, accessToken = config.smtp.accessToken): Transporter {
  const { smtp } = config;
  const auth = smtp.user
    ? accessToken
      ? { type: 'OAuth2' as const, user: smtp.user, accessToken }
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
 * What a failed send says, by the stage that failed, not by the code alone:
 * - `channel`: the server refused the hub itself: its login (a rotated password, an expired
 *   token), its sender at MAIL FROM, or the session (a 5xx greeting). Every mail fails the same
 *   way until an operator (or a token refresh) fixes it: retried, and logged at error.
 * - `mail`: a 5xx at RCPT TO or DATA (an unknown recipient, a policy refusal of the message), a
 *   message too large (552 at MAIL FROM), or an envelope nodemailer cannot send: final.
 * - `passing`: a 4xx, a connection that failed or dropped: retried.
 */
export type SmtpFailure = 'channel' | 'mail' | 'passing';

export function smtpFailure(err: unknown): SmtpFailure {
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    code?: unknown;
    responseCode?: unknown;
    command?: unknown;
    response?: unknown;
  };
  const code = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const command = typeof e.command === 'string' ? e.command.toUpperCase() : undefined;
  if ((typeof e.code === 'string' && CREDENTIAL_CODES.has(e.code)) || (code && CREDENTIAL_REPLIES.has(code)))
    return 'channel';
  if (code !== undefined) {
    if (code < 500) return 'passing';
    const tooLarge = code === 552 || (typeof e.response === 'string' && /\b5\.3\.4\b/.test(e.response));
    if (command === 'MAIL FROM' && tooLarge) return 'mail';
    // A 5xx whose stage nodemailer did not name is taken as the server's last word on the mail.
    return command === undefined || MAIL_COMMANDS.has(command) ? 'mail' : 'channel';
  }
  return e.code === undefined || (typeof e.code === 'string' && TRANSIENT_CODES.has(e.code))
    ? 'passing'
    : 'mail';
}

/**
 * SMTP's verdict on a failed send as the delivery takes it: only the mail's own refusal
 * (`smtpFailure` `mail`) is final; a refusal of the hub's login or sender and a passing failure
 * are retried (for DELIVERY_GIVE_UP_AFTER_SECONDS). Never includes credentials in the message.
 */
export function toSendError(err: unknown, sent: SendOutcome[] = []): SendError {
  const e = err as { code?: string; responseCode?: number; message?: string };
  const code = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const retryable = smtpFailure(err) !== 'mail';
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
      /** The transport for the next mail (one made for it when its token is read from a file). */
      transport: () => Transporter | Promise<Transporter>;
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
      await (await this.o.transport()).sendMail(composed.mail);
    } catch (err) {
      const failure = toSendError(err);
      if (smtpFailure(err) === 'channel') {
        // Every mail fails so until the login (or the sender) is fixed: an operator's matter.
        const e = err as { command?: string; responseCode?: number; code?: string };
        logger.error({
          event: 'email.smtp_refused_us',
          sessionId: batch.session.id,
          stage: e.command,
          code: e.code,
          responseCode: e.responseCode,
          err: failure.message,
        });
      }
      throw failure;
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
