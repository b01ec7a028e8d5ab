import { createHash } from 'node:crypto';
import type { AdapterStore } from '../../src/channels/host-services.ts';
import { type EnvelopeInput, nativeSessionKey } from '../../src/envelope.ts';
import type { Logger } from '../../src/logger.ts';

/** A line the person can answer with to pick choice n: `2`, `2.`, `2)`, `#2`. */
const NUMBERED_ANSWER = /^\s*#?(\d{1,2})\s*[.)]?\s*$/;
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

/** The choices numbered after the text: `1. Yes`, `2. No`, from `start`. */
export function numberedLines(choices: readonly { title: string }[], start = 1): string {
  return choices.map((c, i) => `${start + i}. ${c.title}`).join('\n');
}

/**
 * The numbered choices WhatsApp last showed a person as text (cards and suggestions where no
 * buttons could be sent): a later message that is only a number ("2") answers with the value of
 * that choice, as pressing a button would. Kept in the channel's own store under a hash of the
 * session key, replaced by every reply (a reply without numbered choices clears them), so a
 * number always refers to the latest reply.
 */
export class NumberedChoices {
  constructor(
    private readonly store: AdapterStore,
    private readonly logger: Logger,
  ) {}

  private key(bot: string, nativeKey: string): string {
    return `choices:${bot}:${createHash('sha256').update(nativeKey).digest('base64url')}`;
  }

  /** After a reply went out: what its numbers mean (nothing: the numbers of earlier replies no longer count). */
  async offered(bot: string, nativeKey: string, choices: readonly Choice[], now = new Date()): Promise<void> {
    const key = this.key(bot, nativeKey);
    try {
      if (choices.length === 0) await this.store.delete(key);
      else await this.store.set(key, { choices: [...choices], at: now.toISOString() } satisfies Remembered);
    } catch (err) {
      // A lost record only means a typed number stays a number.
      this.logger.warn({ event: 'whatsapp.choices_failed', err: (err as Error).message });
    }
  }

  /** A number that answers the latest numbered choices becomes the chosen value (its title and number in `meta.choice`). */
  async answer<E extends EnvelopeInput>(envelope: E, now = Date.now()): Promise<E> {
    const match = NUMBERED_ANSWER.exec(envelope.text ?? '');
    if (!match) return envelope;
    const remembered = await this.store
      .get<Remembered>(this.key(envelope.bot, nativeSessionKey(envelope)))
      .catch(() => undefined);
    if (!remembered || now - Date.parse(remembered.at) > CHOICES_TTL_MS) return envelope;
    const n = Number(match[1]);
    const chosen = remembered.choices[n - 1];
    if (!chosen) return envelope;
    return {
      ...envelope,
      text: chosen.value,
      meta: { ...envelope.meta, choice: { number: n, title: chosen.title, typed: envelope.text } },
    };
  }
}
