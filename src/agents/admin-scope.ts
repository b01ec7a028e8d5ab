import { type AgentRecord, EVERY_BOT } from '../store/agents.ts';

/**
 * Whether an admin may manage an agent serving `bots` (or grant them): the operator's token
 * (no admin agent) and an admin of every bot manage everyone; an admin of some bots manages only
 * agents whose bots are all among its own, so that it cannot widen its own reach or anyone's.
 */
export function managesBots(admin: Pick<AgentRecord, 'bots'> | undefined, bots: readonly string[]): boolean {
  if (!admin || admin.bots.includes(EVERY_BOT)) return true;
  return bots.every((bot) => bot !== EVERY_BOT && admin.bots.includes(bot));
}
