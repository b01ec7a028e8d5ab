import type { Logger } from '../logger.ts';
import type { TurnWrite } from '../store/turns.ts';
import { cleanTextDeep } from '../text.ts';

/**
 * What a turn writes, with every NUL and lone UTF-16 surrogate made U+FFFD: in its replies and
 * notes, its state (variables, context, a waiting script's locals, the summary), its memory and
 * its events. Ingress cleans what people send (src/ingress.ts); this is the same for what the bot
 * makes of it — a script's `LEFT` or an LLM answer, an HTTP tool's body with a 0x00 byte.
 * PostgreSQL refuses both in text and JSON, and a refused commit failed the turn on every retry:
 * the person got nothing. Strings inside objects that are not plain data (a class a TypeScript
 * bot stored) are not looked into. Text that is clean (nearly all) costs a walk and no copy.
 */
export function cleanWriteText(write: TurnWrite, logger: Logger): TurnWrite {
  const { value, cleaned } = cleanTextDeep(write);
  if (cleaned.length === 0) return write;
  logger.warn({
    event: 'turn.text_cleaned',
    envelopeId: write.inbound.envelopeId,
    sessionId: write.sessionId,
    bot: write.bot,
    fields: cleaned.slice(0, 20),
  });
  return value;
}
