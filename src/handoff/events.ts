import type { Bus } from '../bus/bus.ts';
import type { Logger } from '../logger.ts';
import { type AgentRecord, servesBot } from '../store/agents.ts';
import type { Db } from '../store/db.ts';
import { type AgentEventRecord, inQueuesOf, insertAgentEvent } from '../store/handoffs.ts';

export const AGENT_EVENT_TYPES = [
  'conversation.waiting',
  'conversation.assigned',
  'conversation.message',
  'conversation.released',
] as const;
export type AgentEventType = (typeof AGENT_EVENT_TYPES)[number];

/** The bus topic every agent event stream listens to, in every gateway. */
export const AGENTS_TOPIC = 'agents';

/**
 * What the agents' topic carries: an event kept in `agent_events` (its `id` resumes a stream), or
 * one with no `id` that is not kept: a conversation erased (its session, and with it its events,
 * no longer exists), which only streams open at the time hear of.
 */
export type PublishedAgentEvent = Omit<AgentEventRecord, 'id'> & { id: number | null };

/**
 * Who sees an event: supervisors and admins every event of their bots; an agent the events of
 * conversations assigned to them, and of waiting ones in their queues (a conversation another
 * agent took leaves their waiting list, so they see that it was assigned too).
 */
export function canSee(
  agent: AgentRecord,
  event: Pick<AgentEventRecord, 'type' | 'bot' | 'agentId' | 'queue' | 'data'>,
): boolean {
  if (!servesBot(agent, event.bot)) return false;
  if (agent.role !== 'agent') return true;
  if (event.agentId === agent.id) return true;
  if (!inQueuesOf(agent, event.queue)) return false;
  if (event.type === 'conversation.waiting' || event.type === 'conversation.assigned') return true;
  // A waiting conversation's messages go to everyone who could take it, and so does its leaving
  // the queue unassigned (a wait timeout, an erasure).
  return (
    event.agentId === null &&
    (event.type === 'conversation.message' || event.type === 'conversation.released')
  );
}

/** Agent events: kept in PostgreSQL (for Last-Event-ID resume) and published on the bus. */
export class AgentEventLog {
  constructor(
    private readonly db: Db,
    private readonly bus: Bus,
    private readonly logger: Logger,
  ) {}

  async emit(event: {
    type: AgentEventType;
    sessionId: string;
    bot: string;
    agentId: string | null;
    queue: string | null;
    data: Record<string, unknown>;
  }): Promise<void> {
    try {
      const record = await insertAgentEvent(this.db, event);
      await this.bus.publish(AGENTS_TOPIC, record);
    } catch (err) {
      // The change itself is committed; a missed event only delays consoles until they read the list.
      this.logger.warn({ event: 'agent_event.emit_failed', type: event.type, err: (err as Error).message });
    }
  }
}
