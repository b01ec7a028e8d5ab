import { createHash } from 'node:crypto';
import type { BotContext } from './bot.ts';

/**
 * A turn is computed again whenever its commit does not happen (the database away, a worker that
 * died before it, a write another writer beat): what it did outside the hub on the way is done
 * again. Each such effect gets a key made of the turn (its session and envelope) and its place in
 * the turn, the same in every computation of that turn and different in any other turn, for the
 * other side to recognise the repeat (an HTTP tool's `Idempotency-Key`).
 */
export class EffectKeys {
  private made = 0;

  constructor(
    private readonly sessionId: string,
    private readonly envelopeId: string,
  ) {}

  /**
   * The key of the turn's next effect. Hashed: the envelope id may name the person (a WhatsApp
   * message id holds the phone number), and the other side only needs it to be the same.
   */
  next(): string {
    const n = this.made++;
    return createHash('sha256').update(`${this.sessionId}\u0000${this.envelopeId}\u0000${n}`).digest('hex');
  }
}

/** Where a BotContext keeps its turn's EffectKeys; contexts derived from it (a held-back script run, a sub-session) hand on the turn's own. */
export const EFFECT_KEYS: unique symbol = Symbol('switchboard.effectKeys');
export interface EffectKeysHolder {
  readonly [EFFECT_KEYS]: EffectKeys | undefined;
}

/**
 * The EffectKeys of the turn `ctx` belongs to; undefined for a context the engine did not make
 * (a test's own), whose effects then carry no key.
 */
export function effectKeysOf(ctx: BotContext): EffectKeys | undefined {
  return (ctx as BotContext & Partial<EffectKeysHolder>)[EFFECT_KEYS];
}
