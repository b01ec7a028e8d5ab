import type { ChannelQueryable } from '../../src/channels/declaration.ts';
import {
  type Attachment,
  attachmentName,
  type EnvelopeInput,
  envelopeId,
  type RefusedAttachment,
} from '../../src/envelope.ts';
import {
  fileUnavailableText,
  type InboundFilesDeps,
  storeInboundAttachments,
} from '../../src/files/inbound.ts';
import { tooLarge } from '../../src/files/store.ts';
import { InvalidEnvelopeError } from '../../src/ingress.ts';
import type { Logger } from '../../src/logger.ts';
import type { Ingress } from '../../src/ports.ts';
import { cleanTextDeep, truncateUtf8 } from '../../src/text.ts';
import type { EmailConfig } from './config.ts';
import type { LoopGuard } from './loop-guard.ts';
import type { Ours } from './message/no-reply.ts';
import { type InboundEmail, parseEmail, REPLY_CUT_TIMEOUT_MS } from './message/parse.ts';
import { answerAddress, verifySender } from './message/sender-trust.ts';
import { chosenSuggestion } from './message/suggestions.ts';
import { threadRoot } from './message/thread.ts';
import type { EmailReplyTo } from './reply-to.ts';
import { knownMessage, latestOutbound, recordInbound } from './store.ts';
import { unverifiedSenderId } from './unverified.ts';

/** Where a mail was read: the mailbox key, its folder and bot, and its UID under a UIDVALIDITY. */
export interface MailLocation {
  mailbox: string;
  folder: string;
  bot: string;
  uidValidity: number;
  uid: number;
}

/** An attachment the mail listed whose bytes could not be read from the server (see MailboxWatcher). */
export interface UnreadAttachment {
  filename?: string;
  contentType: string;
  size?: number;
}

export type InboundOutcome =
  | { status: 'accepted' | 'duplicate'; envelopeId: string; noReply?: string }
  /** Nothing can be done with it (no sender, unparseable): logged and left unflagged for a person. */
  | { status: 'unusable'; reason: string };

export interface InboundDeps {
  store: ChannelQueryable;
  ingress: Ingress;
  logger: Logger;
  config: EmailConfig;
  /** Longest text handed to the bot, in UTF-8 bytes (the hub's MAX_TEXT_BYTES). */
  maxTextBytes: number;
  /** The hub's file store: attachments within the bot's limits go there too (`fileId`). */
  files?: InboundFilesDeps;
  /** Counts the mail the bot would answer, per sender; past its limits a mail is not answered. */
  loops?: LoopGuard;
}

/**
 * Turns one raw mail into an envelope and hands it to the ingress. Safe to repeat: a mail whose
 * Message-ID is already recorded is skipped, and the ingress deduplicates the envelope id.
 * Throws when the envelope could not be durably accepted; the caller retries later.
 */
export class InboundMail {
  private readonly ours: Ours;

  /** The bytes of the attachments being handed in, by attachment (for the file store). */
  private readonly parts = new WeakMap<object, Buffer>();

  constructor(private readonly deps: InboundDeps) {
    this.ours = {
      addresses: new Set([deps.config.from.address]),
      messageIdDomain: deps.config.messageIdDomain,
    };
  }

  /**
   * `unread`: attachments the mail has but whose bytes the server did not hand over (the whole
   * mail could not be fetched, `raw` is its headers and text alone): refused as `unavailable`,
   * so the person is told to send them again, as on the other channels.
   */
  async process(
    raw: Buffer,
    at: MailLocation,
    unread: readonly UnreadAttachment[] = [],
  ): Promise<InboundOutcome> {
    const { store, logger } = this.deps;
    let mail: InboundEmail;
    try {
      mail = await parseEmail(raw, this.ours, this.deps.maxTextBytes);
    } catch (err) {
      return { status: 'unusable', reason: `unparseable: ${(err as Error).message}` };
    }
    // Before anything is looked up or stored: a NUL (`=00` in a quoted-printable body, a
    // Message-ID, a file name) would make every write of this mail fail.
    const cleaned = cleanTextDeep(mail);
    if (cleaned.cleaned.length > 0) {
      mail = cleaned.value;
      logger.warn({
        event: 'email.text_cleaned',
        mailbox: at.folder,
        uid: at.uid,
        fields: cleaned.cleaned.slice(0, 20),
      });
    }
    // The whole text goes to the bot, quote and all: logged, the mail is handled as usual.
    if (mail.replyCutTimedOut)
      logger.warn({
        event: 'email.reply_cut_timeout',
        mailbox: at.folder,
        uid: at.uid,
        timeoutMs: REPLY_CUT_TIMEOUT_MS,
      });
    const id = envelopeId('email', mail.messageId);
    const known = await knownMessage(store, mail.messageId);
    if (known) return { status: 'duplicate', envelopeId: known.envelopeId ?? id };
    if (!mail.from) return { status: 'unusable', reason: 'no sender address' };
    const sender = verifySender({
      authenticationResults: mail.authenticationResults,
      from: mail.fromAll,
      trustedAuthservId: this.deps.config.trustedAuthservId,
    });
    const answer = answerAddress(mail.from, mail.replyTo, sender.verified);
    if (answer.ignoredReplyTo)
      logger.warn({
        event: 'email.reply_to_ignored',
        envelopeId: id,
        mailbox: at.folder,
        uid: at.uid,
        reason: answer.ignoredReplyTo.reason,
      });

    const rootCandidate = threadRoot(mail);
    // A client that dropped References still names the mail it answers; we know that mail's thread.
    const thread = (await knownMessage(store, rootCandidate))?.thread ?? rootCandidate;
    const replyTo: EmailReplyTo = {
      messageId: mail.messageId,
      references: mail.references,
      subject: mail.subject,
      to: answer.to,
      mailbox: at.folder,
      bot: at.bot,
      envelopeId: id,
    };
    const meta: Record<string, unknown> = {
      subject: mail.subject,
      messageId: mail.messageId,
      to: mail.to.map((a) => a.address),
      cc: mail.cc.map((a) => a.address),
      mailbox: at.folder,
      senderVerified: sender.verified,
      senderCheck: sender.reason,
      ...(answer.ignoredReplyTo ? { replyToIgnored: answer.ignoredReplyTo } : {}),
      ...(mail.inReplyTo ? { inReplyTo: mail.inReplyTo } : {}),
      ...(mail.date ? { date: mail.date } : {}),
    };
    const senderId = sender.verified ? mail.from.address : unverifiedSenderId(mail.from.address);
    let text = mail.text;
    // A new thread with an empty body asks its question in the subject line.
    if (!text && !mail.inReplyTo && mail.references.length === 0) text = mail.subject;

    // A responder that ignores Auto-Submitted would loop with us: past the loop limits the mail
    // is recorded as the ones above are, not answered. It keeps its reply address: an agent may
    // still answer it.
    const noReply =
      mail.noReply ??
      // Counted by the sender as its session knows them: spoofed mail, unverified, does not
      // use up the budget of the address it names.
      (await this.deps.loops?.check(senderId, text, {
        envelopeId: id,
        mailbox: at.folder,
        bot: at.bot,
      }));
    if (noReply) meta.noReplyReason = noReply;
    const answerable = !mail.noReply;
    const truncated = truncateUtf8(text, this.deps.maxTextBytes);
    if (truncated !== text) meta.truncated = true;
    text = truncated;

    const choice = noReply ? undefined : await this.chosenSuggestion(text, mail.inReplyTo);
    if (choice) {
      meta.choice = { index: choice.index + 1, text: choice.suggestion.text };
      text = choice.suggestion.value ?? choice.suggestion.text;
    }

    const { attachments, refused } = this.attachments(mail, at.bot);
    if (unread.length > 0) {
      const notice = this.deps.files?.rules(at.bot, 'email').fileUnavailableNotice;
      for (const a of unread) {
        refused.push({
          type: a.contentType,
          ...(a.filename ? { name: attachmentName(a.filename) } : {}),
          ...(a.size === undefined ? {} : { size: a.size }),
          reason: 'unavailable',
          message: fileUnavailableText(notice, a.filename ? attachmentName(a.filename) : 'the attachment'),
        });
        this.deps.files?.metrics?.inboundFileFailures.inc({ channel: 'email', outcome: 'gave_up' });
      }
      logger.warn({
        event: 'file.inbound_unavailable',
        envelopeId: id,
        channel: 'email',
        permanent: false,
        count: unread.length,
        err: 'the mail could not be fetched whole',
      });
    }
    let envelope: EnvelopeInput = {
      id,
      channel: 'email',
      bot: at.bot,
      from: {
        id: senderId,
        email: mail.from.address,
        ...(mail.from.name ? { name: mail.from.name } : {}),
      },
      identityVerified: sender.verified,
      thread,
      text,
      attachments,
      // Told to the person in the thread by the engine, as on every channel; the bot runs on.
      ...(refused.length > 0 ? { refusedAttachments: refused } : {}),
      // Mail that must never be answered carries nothing to answer with; mail held back as a
      // suspected loop keeps its address, for an agent.
      ...(noReply ? { noReply: true } : {}),
      ...(answerable ? { replyTo } : {}),
      meta,
      receivedAt: new Date().toISOString(),
    };
    // Into the file store, within the bot's limits (EMAIL_MAX_ATTACHMENT_BYTES can only lower them).
    const files = this.deps.files;
    if (files)
      envelope = await storeInboundAttachments(
        files,
        envelope,
        async (a) => {
          const content = this.parts.get(a);
          return content ? { body: [content] } : undefined;
        },
        { maxBytes: this.deps.config.maxAttachmentBytes },
      );
    let status: 'accepted' | 'duplicate';
    try {
      status = (await this.deps.ingress.accept(envelope)).status;
    } catch (err) {
      if (err instanceof InvalidEnvelopeError) return { status: 'unusable', reason: err.message };
      throw err;
    }
    await recordInbound(store, {
      messageId: mail.messageId,
      thread,
      envelopeId: id,
      mailbox: at.mailbox,
      uidValidity: at.uidValidity,
      uid: at.uid,
      replyTo: answerable ? replyTo : null,
      noReply: noReply ?? null,
    });
    if (status === 'accepted')
      logger.info({
        event: 'email.received',
        envelopeId: id,
        mailbox: at.folder,
        uid: at.uid,
        bot: at.bot,
        senderVerified: sender.verified,
        ...(noReply ? { noReply } : {}),
      });
    return { status, envelopeId: id, ...(noReply ? { noReply } : {}) };
  }

  /**
   * A numbered answer ("2") to the mail that offered numbered choices, when that mail is the
   * latest we sent in its session (its choices are still the open question).
   */
  private async chosenSuggestion(text: string, inReplyTo: string | undefined) {
    if (!inReplyTo) return undefined;
    const answered = await knownMessage(this.deps.store, inReplyTo);
    if (answered?.direction !== 'out' || !answered.sessionId || !answered.suggestions?.length)
      return undefined;
    const choice = chosenSuggestion(text, answered.suggestions);
    if (!choice) return undefined;
    return (await latestOutbound(this.deps.store, answered.sessionId)) === inReplyTo ? choice : undefined;
  }

  /**
   * Lists every attachment; those within the limit (the bot's `sessions.maxFileBytes`, lowered by
   * EMAIL_MAX_ATTACHMENT_BYTES) go into the file store with the envelope (their bytes are kept for
   * that in `parts`). A larger one is refused unread, with the shared message naming its size:
   * nothing of it is stored.
   */
  private attachments(
    mail: InboundEmail,
    bot: string,
  ): { attachments: Attachment[]; refused: RefusedAttachment[] } {
    const limit = Math.min(
      this.deps.config.maxAttachmentBytes,
      this.deps.files?.rules(bot, 'email').maxFileBytes ?? Number.POSITIVE_INFINITY,
    );
    const attachments: Attachment[] = [];
    const refused: RefusedAttachment[] = [];
    for (const a of mail.attachments) {
      if (a.size > limit) {
        // Cut as the envelope keeps it: a name of any length would make the notice too long too.
        const message = tooLarge(
          a.filename ? attachmentName(a.filename) : 'the attachment',
          limit,
          a.size,
        ).message;
        this.deps.logger.info({ event: 'email.attachment_refused', size: a.size, limit });
        refused.push({
          type: a.contentType,
          size: a.size,
          ...(a.filename ? { name: attachmentName(a.filename) } : {}),
          reason: 'too_large',
          message,
        });
        continue;
      }
      const base: Attachment = {
        type: a.contentType,
        size: a.size,
        ...(a.filename ? { name: attachmentName(a.filename) } : {}),
      };
      const data: Record<string, unknown> = {};
      if (a.inline) data.inline = true;
      if (a.contentId) data.contentId = a.contentId;
      const attachment = Object.keys(data).length > 0 ? { ...base, data } : base;
      this.parts.set(attachment, a.content);
      attachments.push(attachment);
    }
    return { attachments, refused };
  }
}
