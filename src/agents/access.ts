import { z } from 'zod';
import type { Bus } from '../bus/bus.ts';
import type { Logger } from '../logger.ts';

/**
 * The bus topic on which a change to an agent's access is announced: a sign-out, a new password
 * or API token, a removal, a new role, bots or queues. Every gateway's open event streams of that
 * agent check the credential they were opened with again at once (`GET /api/agent/events`).
 */
export const AGENT_ACCESS_TOPIC = 'agents:access';

export const AccessNoticeSchema = z.object({ agent_id: z.string() });
export type AccessNotice = z.infer<typeof AccessNoticeSchema>;

/**
 * Announces that `agentId`'s access changed. Never throws: the change itself is committed, and a
 * lost notice only delays its streams until their periodic check.
 */
export async function announceAccessChange(bus: Bus, logger: Logger, agentId: string): Promise<void> {
  try {
    await bus.publish(AGENT_ACCESS_TOPIC, { agent_id: agentId } satisfies AccessNotice);
  } catch (err) {
    logger.warn({ event: 'agent.access_notice_failed', agentId, err: (err as Error).message });
  }
}
