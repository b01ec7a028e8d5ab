import { createHash } from 'node:crypto';
import { chooseNumbered, numberedAnswer } from '../../src/cards/numbered.ts';
import type { AdapterStore } from '../../src/channels/host-services.ts';
import { type EnvelopeInput, nativeSessionKey } from '../../src/envelope.ts';
import type { Logger } from '../../src/logger.ts';

/** Numbered choices older than this no longer answer a digit (the person has moved on). */
export const CHOICES_TTL_MS = 24 * 3_600_000;

export interface Choice {
  title: string;
  value: string;
}

interface Remembered {
  choices: Choice[];
  at: string;
}

export { numberedLines } from '../../src/cards/numbered.ts';

/** The store key of a session's numbered choices (its bot and native key; `channel_values.key`). */
export function choicesKey(bot: string, nativeKey: string): string {
  return `choices:${bot}:${createHash('sha256').update(nativeKey).digest('base64url')}`;
}

/**
 * The numbered choices WhatsApp last showed a person as text (cards and suggestions where no
 * buttons could be sent): a later message that is only a number ("2") answers with the value of
 * that choice, as pressing a button would. Kept in the channel's own store under a hash of the
 * session key, replaced by every reply (a reply without numbered choices clears them), so a
 * number always refers to the latest reply. The record names the session that offered them and
 * lives a day at most: it goes when that session ends or is removed (`AdapterStore.set`).
 */
export class NumberedChoices {
  constructor(
    private readonly store: AdapterStore,
    private readonly logger: Logger,
  ) {}

  private key(bot: string, nativeKey: string): string {
    return choicesKey(bot, nativeKey);
  }

  /** After a reply went out: what its numbers mean (nothing: the numbers of earlier replies no longer count). */
  async offered(
    session: { id: string; bot: string; nativeKey: string },
    choices: readonly Choice[],
    now = new Date(),
  ): Promise<void> {
    const key = this.key(session.bot, session.nativeKey);
    try {
      if (choices.length === 0) await this.store.delete(key);
      else
        await this.store.set(key, { choices: [...choices], at: now.toISOString() } satisfies Remembered, {
          sessionId: session.id,
          ttlMs: CHOICES_TTL_MS,
        });
    } catch (err) {
      // A lost record only means a typed number stays a number.
      this.logger.warn({ event: 'whatsapp.choices_failed', err: (err as Error).message });
    }
  }

  /** A number that answers the latest numbered choices becomes the chosen value (its title and number in `meta.choice`). */
  async answer<E extends EnvelopeInput>(envelope: E, now = Date.now()): Promise<E> {
    if (numberedAnswer(envelope.text) === undefined) return envelope;
    const remembered = await this.store
      .get<Remembered>(this.key(envelope.bot, nativeSessionKey(envelope)))
      .catch(() => undefined);
    if (!remembered || now - Date.parse(remembered.at) > CHOICES_TTL_MS) return envelope;
    const picked = chooseNumbered(envelope.text, remembered.choices);
    if (!picked) return envelope;
    const { choice: chosen, index } = picked;
    const n = index + 1;
    return {
      ...envelope,
      text: chosen.value,
      meta: { ...envelope.meta, choice: { number: n, title: chosen.title, typed: envelope.text } },
    };
  }
}
