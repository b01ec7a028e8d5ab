import type { ChannelQueryable, ErasedSessions } from '../../src/channels/declaration.ts';
import { CHOICES_TTL_MS, choicesKey } from './choices.ts';

/**
 * Erasing a person: the numbered choices (WhatsApp Web) the channel's keyed store keeps for
 * their sessions — the titles and values last offered, under a hash of the session's key, kept
 * for a day — found by each session's bot and native key, before the sessions go. Choices older
 * than a day answer nothing any more and go too: one whose session went before (its retention)
 * could be found no other way.
 */
export async function eraseWhatsAppOf(q: ChannelQueryable, erased: ErasedSessions): Promise<void> {
  // The sessions' keys come with the erasure: a channel's hook reads no core table.
  const keys = erased.sessions.flatMap((s) =>
    s.channel === 'whatsapp' ? [choicesKey(s.bot, s.nativeKey)] : [],
  );
  await q.query(
    `DELETE FROM channel_values WHERE channel = 'whatsapp'
       AND (key = ANY($1::text[])
            OR (starts_with(key, 'choices:') AND updated_at < now() - $2 * interval '1 millisecond'))`,
    [[...new Set(keys)], CHOICES_TTL_MS],
  );
}
