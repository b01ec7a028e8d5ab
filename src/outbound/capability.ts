import type { SessionRecord } from '../store/records.ts';

/**
 * A template message (WhatsApp Cloud API `type: template`): a name and language the platform has
 * approved, and either body `parameters` or `components` passed through as the platform defines them.
 */
export interface OutboundTemplate {
  name: string;
  language: string;
  parameters?: string[];
  components?: Record<string, unknown>[];
}

/** What an operator asks to send first, as the channel's adapter sees it before anything is queued. */
export interface OutboundDraft {
  bot: string;
  /** The recipient's native id, normalised by the channel's declaration. */
  to: string;
  /** The open session of `(bot, channel, to)`, if there is one. */
  open?: SessionRecord;
  /** The latest session of that key, open or ended: what earlier conversations left (a reference). */
  latest?: SessionRecord;
  text?: string;
  template?: OutboundTemplate;
  subject?: string;
  /**
   * A stable id of this message (the outbound message's id): whatever the adapter derives from it
   * (a new thread's id) comes out the same when the message is placed again after a crash.
   */
  key?: string;
  now: Date;
}

/** A refusal the API answers with, as `{"error": {"code", "message"}}` and this status. */
export interface OutboundRefusal {
  ok: false;
  status: 400 | 404 | 409 | 422;
  code: string;
  message: string;
}

/** Accepted: what a conversation the message opens needs (the sender's address, a thread of its own). */
export interface OutboundAcceptance {
  ok: true;
  /** The new session's `replyTo` when no session is open (ignored for an open one). */
  replyTo?: unknown;
  /** A new thread to open (email): the message becomes a session of its own, keyed with it. */
  thread?: string;
}

export type OutboundDecision = OutboundAcceptance | OutboundRefusal;

/**
 * A channel's rules for messages the business sends first, declared by its adapter
 * (`ChannelAdapter.outbound`): the core never names a channel. A channel without it can be
 * written to only inside a conversation the person opened (an open session, or an earlier one's
 * address).
 */
export interface ChannelOutbound {
  /** Whether the channel has template messages at all; a template elsewhere is 422 `not_supported`. */
  readonly templates: boolean;
  /** Accepts or refuses a draft; may say what a conversation the message opens needs. */
  prepare(draft: OutboundDraft): OutboundDecision | Promise<OutboundDecision>;
}

export const refuse = (
  status: OutboundRefusal['status'],
  code: string,
  message: string,
): OutboundRefusal => ({
  ok: false,
  status,
  code,
  message,
});
