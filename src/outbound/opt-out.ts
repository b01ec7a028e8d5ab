import type { Queryable } from '../store/db.ts';

/** What a bot's `outbound` settings say about stop and start words. */
export interface OptOutWords {
  stopWords: string[];
  startWords: string[];
}

/** A bot's words upper-cased once (settings are loaded once), not again for every message. */
const upperCased = new WeakMap<OptOutWords, { stop: Set<string>; start: Set<string> }>();

/** Whether a message is a stop or a start word (the whole message, any case, trimmed). */
export function optOutWord(words: OptOutWords, text: string): 'stop' | 'start' | undefined {
  const said = text.trim().toUpperCase();
  if (said === '') return undefined;
  let upper = upperCased.get(words);
  if (!upper) {
    upper = {
      stop: new Set(words.stopWords.map((w) => w.toUpperCase())),
      start: new Set(words.startWords.map((w) => w.toUpperCase())),
    };
    upperCased.set(words, upper);
  }
  if (upper.stop.has(said)) return 'stop';
  if (upper.start.has(said)) return 'start';
  return undefined;
}

/** Records a stop (idempotent) or removes it on a start. */
export async function setOptOut(
  q: Queryable,
  key: { bot: string; channel: string; nativeId: string },
  optedOut: boolean,
): Promise<void> {
  if (optedOut)
    await q.query(
      `INSERT INTO outbound_opt_outs (bot, channel, native_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
      [key.bot, key.channel, key.nativeId],
    );
  else
    await q.query(`DELETE FROM outbound_opt_outs WHERE bot = $1 AND channel = $2 AND native_id = $3`, [
      key.bot,
      key.channel,
      key.nativeId,
    ]);
}

export async function isOptedOut(
  q: Queryable,
  key: { bot: string; channel: string; nativeId: string },
): Promise<boolean> {
  const { rows } = await q.query(
    `SELECT 1 FROM outbound_opt_outs WHERE bot = $1 AND channel = $2 AND native_id = $3`,
    [key.bot, key.channel, key.nativeId],
  );
  return rows.length > 0;
}

/**
 * A person's stop or start word: recorded (outside the turn, idempotent on a replay), answered
 * with the bot's confirmation, and no bot turn. True when the message was one.
 */
export async function handleOptOutWord(
  q: Queryable,
  settings: OptOutWords & { stopText: string; startText: string },
  draft: {
    envelope: { kind: string; text: string; bot: string; channel: string; from: { id: string } };
    notice(text: string): void;
  },
): Promise<boolean> {
  const { envelope } = draft;
  if (envelope.kind !== 'message') return false;
  const word = optOutWord(settings, envelope.text);
  if (!word) return false;
  await setOptOut(
    q,
    { bot: envelope.bot, channel: envelope.channel, nativeId: envelope.from.id },
    word === 'stop',
  );
  draft.notice(word === 'stop' ? settings.stopText : settings.startText);
  return true;
}
