import { z } from 'zod';
import type { SignInRefusal } from '../../src/auth/sign-in-service.ts';
import { formatIssues } from '../../src/config/env-parsing.ts';
import { BotNameSchema } from '../../src/envelope.ts';
import type { ClientAttachment, ClientCard } from '../../src/files/client-view.ts';
import { parseJson } from '../../src/json.ts';
import { invalidTextPaths } from '../../src/text.ts';

/**
 * The web widget's WebSocket protocol (`GET /ws`): JSON text frames, each with a `type`.
 * README's "Web widget" section documents it; keep the two together. The widget imports only
 * the types from here (never zod), so the bundle stays small.
 */

/** A client's own id for a message: the idempotency key of its envelope (`web:<session>:<id>`). */
export const CLIENT_MESSAGE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export const HelloFrame = z.object({
  type: z.literal('hello'),
  /** The session token from an earlier `welcome`. Absent: open a new session. */
  token: z.string().min(1).max(200).optional(),
  /**
   * The hub's own page: bind to the session in the bot's session cookie (sent with the socket's
   * handshake, counted only from the hub's own origin). No cookie, or a dead one: closed with 4401.
   */
  cookie: z.literal(true).optional(),
  /** The bot to open a new session with (default `default`); with a token, it must be the token's bot. */
  bot: BotNameSchema.optional(),
  /** The highest `seq` the client has shown; everything after it is sent again. 0: the whole history. */
  lastSeq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  /** Where the widget is: the page's URL and the browser's language, kept in the envelope's meta. */
  pageUrl: z.string().max(2000).optional(),
  language: z.string().max(100).optional(),
});

export const MessageFrame = z.object({
  type: z.literal('message'),
  id: z.string().regex(CLIENT_MESSAGE_ID_PATTERN, 'id is 1 to 64 of A-Z a-z 0-9 _ -'),
  text: z.string(),
  /** Files uploaded with `POST /api/session/files` (their `file_id`s); the text may then be empty. */
  files: z.array(z.uuid()).max(10).optional(),
});

/** The client has shown everything up to `seq`: those replies become `delivered`. */
export const AckFrame = z.object({ type: z.literal('ack'), seq: z.number().int().min(0) });

/** Ends the session (its token stops working); the client may then `hello` again without a token. */
export const EndFrame = z.object({ type: z.literal('end') });

/** Application-level keepalive: the server answers `pong` (browsers cannot send WebSocket pings). */
export const PingFrame = z.object({ type: z.literal('ping') });

/**
 * Sign-in: the host site's JWT for its user (see README, "Sign-in and identities"). Answered by
 * `authenticated` with the session's new token (the old one stops working), or an `error`.
 */
export const AuthenticateFrame = z.object({
  type: z.literal('authenticate'),
  jwt: z.string().min(1).max(8192),
});

export const ClientFrameSchema = z.discriminatedUnion('type', [
  HelloFrame,
  MessageFrame,
  AckFrame,
  EndFrame,
  PingFrame,
  AuthenticateFrame,
]);
export type ClientFrame = z.infer<typeof ClientFrameSchema>;
export type ClientFrameInput = z.input<typeof ClientFrameSchema>;

export interface SuggestionItem {
  text: string;
  value: string;
}

export type ServerFrame =
  | {
      type: 'welcome';
      sessionId: string;
      bot: string;
      /** The bot's display name, for the widget's title. */
      title: string;
      /** Only when this hello opened a new session: keep it; it is never sent again. */
      token?: string;
      /** The session's last sequence number when it was bound; missed messages follow. */
      lastSeq: number;
      resumed: boolean;
    }
  | {
      type: 'message';
      seq: number;
      /** `agent`: a person at the business answering in the bot's place. */
      role: 'user' | 'assistant' | 'agent' | 'system';
      text: string;
      createdAt: string;
      /** User messages: the client's id of the message (the same in every tab). */
      clientId?: string;
      /** Replies: the envelope they answer, as in `chunk.inReplyTo`. */
      inReplyTo?: string;
      suggestions?: SuggestionItem[];
      /** Files: `url` is a short-lived signed link (relative to the hub when PUBLIC_URL is not set). */
      attachments?: ClientAttachment[];
      /** Cards (several: a carousel); a value button sends its value back as a `message`. */
      cards?: ClientCard[];
      /** The text only stands in for the cards or files (for channels that show only text). */
      textIsFallback?: boolean;
    }
  | { type: 'typing'; active: boolean }
  | {
      /** A part of a reply still being produced; `index` counts from 0 per reply, `text` is the new part. */
      type: 'chunk';
      inReplyTo: string;
      index: number;
      text: string;
    }
  | {
      /** The buttons to show now, from the newest message; cleared by the next message. */
      type: 'suggestions';
      seq: number;
      items: SuggestionItem[];
    }
  | { type: 'ack'; id: string; status: 'accepted' | 'duplicate' }
  | { type: 'error'; code: ErrorCode; message: string; id?: string; retryAfterMs?: number }
  | { type: 'ended'; sessionId: string }
  | {
      /** Signed in: keep `token` in place of the old one; the conversation goes on. */
      type: 'authenticated';
      sessionId: string;
      token: string;
      authLevel: 'authenticated' | 'elevated';
      userId: string;
    }
  | { type: 'pong' };

export type ErrorCode =
  | 'bad_frame'
  /** A NUL or an unpaired surrogate in a string of the frame: not sent on, not kept. */
  | 'invalid_text'
  | 'not_ready'
  | 'empty_text'
  | 'text_too_long'
  | 'rate_limited'
  /** A `files` id that is not an upload of this session. */
  | 'unknown_file'
  /** A hello without token, on a socket whose own session is still open. */
  | 'session_open'
  | SignInRefusal
  | 'internal';

/** How the server closes a socket, and why. */
export const CLOSE = {
  GOING_AWAY: 1001,
  TOO_BIG: 1009,
  /** The server cannot serve the session right now (its pub/sub is down); reconnect later. */
  UNAVAILABLE: 1011,
  /** The token is unknown, ended or expired, or belongs to another bot or channel. */
  BAD_TOKEN: 4401,
  /**
   * The session's token was replaced (a sign-in, here or anywhere) and this socket holds the old
   * one: reconnect with the new token if this client has it, else start over.
   */
  TOKEN_REPLACED: 4410,
  /** `hello` named a bot that does not exist. */
  UNKNOWN_BOT: 4404,
  /** No `hello` arrived in time. */
  HELLO_TIMEOUT: 4408,
  /** The session already has as many sockets on this gateway as it may (its tabs); retry later. */
  TOO_MANY_SOCKETS: 4429,
  /** The client does not read what it is sent (standard "try again later"). */
  TOO_SLOW: 1013,
} as const;

export type FrameProblem = {
  error: string;
  code: 'bad_frame' | 'invalid_text';
  /** A message frame's own id, when it can be read, so the client knows which message failed. */
  id?: string;
};

/** Parses one text frame; the error says what is wrong, for an `error` frame. */
export function parseClientFrame(raw: string): { frame: ClientFrame } | FrameProblem {
  let json: unknown;
  try {
    json = parseJson(raw);
  } catch {
    return { error: 'a frame is one JSON object', code: 'bad_frame' };
  }
  const bad = invalidTextPaths(json);
  if (bad.length > 0) {
    const id = (json as { id?: unknown }).id;
    return {
      error: `${bad.map((p) => p || 'frame').join(', ')}: text must not contain NUL or unpaired surrogate characters`,
      code: 'invalid_text',
      ...(typeof id === 'string' && CLIENT_MESSAGE_ID_PATTERN.test(id) ? { id } : {}),
    };
  }
  const parsed = ClientFrameSchema.safeParse(json);
  if (parsed.success) return { frame: parsed.data };
  const issues = formatIssues(parsed.error.issues, 'frame');
  return { error: issues, code: 'bad_frame' };
}
