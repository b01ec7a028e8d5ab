import type { ChannelQueryable, ErasedSessions } from '../../src/channels/declaration.ts';
import { CALLBACK_VALUE_KEY } from './outbound.ts';

/**
 * Erasing a person: the long button values the channel's keyed store keeps for their sessions
 * (what a card's button sends back: an order, an address, …). Each names its session and goes
 * with it by cascade; this removes them first, by name, so the hook says what it erases. Values
 * stored before they named a session (migration 0125; kept a week since) cannot be told apart by
 * person: an erasure removes them all (their buttons then answer that they have expired).
 */
export async function eraseTelegramOf(q: ChannelQueryable, erased: ErasedSessions): Promise<void> {
  await q.query(
    `DELETE FROM channel_values WHERE channel = 'telegram' AND starts_with(key, $2)
       AND (session_id = ANY($1::uuid[]) OR session_id IS NULL)`,
    [erased.sessionIds, CALLBACK_VALUE_KEY],
  );
}
