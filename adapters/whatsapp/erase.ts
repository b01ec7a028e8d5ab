import type { ChannelQueryable } from '../../src/channels/declaration.ts';
import { choicesKey } from './choices.ts';

/**
 * Erasing a person: the numbered choices (WhatsApp Web) the channel's keyed store keeps for
 * their sessions — the titles and values last offered, under a hash of the session's key, kept
 * for a day — found by each session's bot and native key, before the sessions go.
 */
export async function eraseWhatsAppOf(
  q: ChannelQueryable,
  erased: { sessionIds: string[]; envelopeIds: string[] },
): Promise<void> {
  const { rows } = await q.query<{ bot: string; native_key: string }>(
    "SELECT bot, native_key FROM sessions WHERE id = ANY($1::uuid[]) AND channel = 'whatsapp'",
    [erased.sessionIds],
  );
  if (rows.length === 0) return;
  await q.query("DELETE FROM channel_values WHERE channel = 'whatsapp' AND key = ANY($1::text[])", [
    [...new Set(rows.map((r) => choicesKey(r.bot, r.native_key)))],
  ]);
}
