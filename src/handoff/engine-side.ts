import { z } from 'zod';
import type { BotRegistry } from '../config/bots.ts';
import type { Envelope } from '../envelope.ts';
import type { Logger } from '../logger.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import { getAgent, servesBot } from '../store/agents.ts';
import type { Db } from '../store/db.ts';
import { availableAgent, getHandoff } from '../store/handoffs.ts';
import type { SessionHandoff, SessionRecord } from '../store/records.ts';
import type { TurnWrite } from '../store/turns.ts';
import { type HandoffService, transferEndEnvelope } from './service.ts';

/** The scheduled job that gives a conversation nobody took back to the bot. */
export const WAIT_TIMEOUT_JOB = 'handoff.wait-timeout';
/** The repeated job that gives back the conversations of agents who went away. */
export const OFFLINE_CHECK_JOB = 'handoff.offline-check';
export const OFFLINE_CHECK_EVERY_MS = 30_000;
/** The scheduled job id of a handoff's wait timer. */
export const waitTimeoutJobId = (handoffId: string) => `handoff-wait:${handoffId}`;

const TimeoutPayload = z.object({ handoffId: z.uuid() });
const UUID = z.uuid();

/** What the engine asks of the handoff side around a turn. */
export interface EngineHandoff {
  availableAgent(bot: string, queue: string | null): Promise<string>;
  /** Before the commit of a turn that opens a handoff: the named agent is checked, the wait timer set. */
  beforeCommit(write: TurnWrite): Promise<void>;
  /** After the commit of a turn that touched a handoff, or ran while people held the session. */
  afterCommit(
    envelope: Envelope,
    session: SessionRecord,
    write: TurnWrite,
    held: SessionHandoff | null,
  ): Promise<void>;
}

export function engineHandoff(deps: {
  db: Db;
  bots: BotRegistry;
  scheduler: Scheduler;
  service: HandoffService;
  logger: Logger;
}): EngineHandoff & { registerJobs(): void; startJobs(): Promise<void> } {
  const { db, bots, scheduler, service, logger } = deps;
  const waitMs = (bot: string) =>
    (bots.has(bot) ? bots.get(bot).settings.handoff.waitTimeoutMinutes : 10) * 60_000;

  return {
    async availableAgent(bot, queue) {
      return (await availableAgent(db, bot, queue)) ?? '';
    },

    async beforeCommit(write) {
      const open = write.handoff?.open;
      if (!open) return;
      if (open.agentId !== null) {
        // TRANSFER SESSION with an id nobody has, or of an agent who does not serve the bot: the queue.
        const agent = UUID.safeParse(open.agentId).success ? await getAgent(db, open.agentId) : undefined;
        if (!agent || !servesBot(agent, write.bot)) {
          logger.warn({ event: 'handoff.unknown_agent', sessionId: write.sessionId, agentId: open.agentId });
          open.agentId = null;
        }
      }
      if (open.agentId === null) {
        // Set before the commit, so a crash right after it cannot lose the timer; a timer of a
        // handoff that never committed finds no waiting row and does nothing.
        await scheduler.schedule(
          WAIT_TIMEOUT_JOB,
          { handoffId: open.id },
          {
            id: waitTimeoutJobId(open.id),
            delayMs: waitMs(write.bot),
          },
        );
      }
    },

    async afterCommit(envelope, session, write, held) {
      const open = write.handoff?.open;
      if (open) {
        const agent = open.agentId ? await getAgent(db, open.agentId) : undefined;
        logger.info({
          event: 'handoff.requested',
          sessionId: session.id,
          handoffId: open.id,
          queue: open.queue,
          assignedTo: agent?.id ?? null,
        });
        await service.events.emit({
          type: agent ? 'conversation.assigned' : 'conversation.waiting',
          sessionId: session.id,
          bot: session.bot,
          agentId: agent?.id ?? null,
          queue: open.queue,
          data: {
            session_id: session.id,
            channel: session.channel,
            queue: open.queue,
            waiting_since: open.at.toISOString(),
            assigned_to: agent?.id ?? null,
          },
        });
        if (agent) await service.announce(session, agent, open.id);
        return;
      }
      if (write.handoff?.closeReason && held) {
        await service.events.emit({
          type: 'conversation.released',
          sessionId: session.id,
          bot: session.bot,
          agentId: null,
          queue: held.queue,
          data: { session_id: session.id, reason: write.handoff.closeReason },
        });
        return;
      }
      const row = write.inbound;
      const routed = envelope.kind === 'message' && held;
      const fromAgent = envelope.kind === 'outbound' && envelope.outbound?.agentId;
      if (!routed && !fromAgent) return;
      const handoff = held ? await getHandoff(db, held.id) : undefined;
      if (routed && held && (!handoff || handoff.state === 'ended')) {
        // The handoff ended but its end never reached the lane (a crash between the two): send it again.
        await service.ingress.accept(
          transferEndEnvelope(session, held.id, (handoff?.endReason as 'released') ?? 'released'),
        );
      }
      await service.events.emit({
        type: 'conversation.message',
        sessionId: session.id,
        bot: session.bot,
        agentId: handoff && handoff.state === 'assigned' ? handoff.agentId : null,
        queue: handoff?.queue ?? held?.queue ?? null,
        data: {
          session_id: session.id,
          message: {
            seq: row.seq,
            role: row.role,
            text: row.content,
            created_at: write.at.toISOString(),
            ...(envelope.outbound?.agentId ? { agent_id: envelope.outbound.agentId } : {}),
          },
        },
      });
    },

    registerJobs() {
      scheduler.handle(WAIT_TIMEOUT_JOB, async (payload) => {
        const { handoffId } = TimeoutPayload.parse(payload);
        await service.timeout(handoffId);
      });
      scheduler.handle(OFFLINE_CHECK_JOB, async () => {
        await service.releaseAbsent();
      });
    },

    async startJobs() {
      await scheduler.repeat(OFFLINE_CHECK_JOB, OFFLINE_CHECK_JOB, OFFLINE_CHECK_EVERY_MS);
    },
  };
}
