import { SendError, type SendOutcome } from '../../src/delivery/sender.ts';

/** What a failed Bot API call tells: Telegram's `error_code` and `description`, or no answer at all. */
export interface BotApiFailure {
  /** Telegram's error code (an HTTP status: 400, 403, 429, 5xx); undefined when no answer came. */
  code?: number;
  description: string;
  /** From `parameters.retry_after`, in seconds. */
  retryAfterSeconds?: number;
  /** From `parameters.migrate_to_chat_id`: the group became a supergroup with this id. */
  migrateToChatId?: number;
}

/**
 * Turns a failed Bot API call into the SendError delivery understands: flood control (429) waits
 * the `retry_after` Telegram gives, outages (5xx, no answer) are retried, and refusals (400: bad
 * request, chat not found; 403: the person blocked the bot) are not.
 */
export function toSendError(f: BotApiFailure, sent: SendOutcome[]): SendError {
  const label = f.code !== undefined ? `Telegram error ${f.code}` : 'the Bot API did not answer';
  const message = `${label}: ${f.description}`;
  if (f.code === 429)
    return new SendError(message, {
      retryable: true,
      ...(f.retryAfterSeconds !== undefined ? { retryAfterMs: f.retryAfterSeconds * 1000 } : {}),
      sent,
    });
  if (f.migrateToChatId !== undefined)
    return new SendError(`${message} (the group is now the supergroup ${f.migrateToChatId})`, {
      retryable: false,
      sent,
    });
  const transient = f.code === undefined || f.code >= 500;
  return new SendError(message, { retryable: transient, sent });
}
