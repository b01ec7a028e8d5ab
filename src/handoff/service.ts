import { randomUUID } from 'node:crypto';
import type { BotRegistry } from '../config/bots.ts';
import { outboundEnvelope } from '../engine/outbound.ts';
import { type EnvelopeInput, identityOfNativeKey } from '../envelope.ts';
import type { Logger } from '../logger.ts';
import type { Ingress } from '../ports.ts';
import { type AgentRecord, getAgent, servesBot } from '../store/agents.ts';
import type { Db } from '../store/db.ts';
import {
  type ClaimResult,
  claimHandoff,
  endHandoff,
  type HandoffRecord,
  handoffsOfAbsentAgents,
  openHandoffOf,
  openHandoffsOfAgent,
  type TransferEndReason,
  transferHandoff,
} from '../store/handoffs.ts';
import type { SessionRecord } from '../store/records.ts';
import { loadSnapshot } from '../store/sessions.ts';
import type { AgentEventLog } from './events.ts';

/** An agent with no console or event stream for this long is offline: their conversations go back. */
export const AGENT_ABSENT_MS = 2 * 60_000;

/** The envelope kind that ends a handoff in the session's lane (ON TRANSFER END runs there). */
export const TRANSFER_END_KIND = 'transfer_end';

/** The id of a handoff's end envelope: one per handoff, so it is processed once however often it is queued. */
export const transferEndId = (channel: string, handoffId: string) => `${channel}:handoff:${handoffId}:end`;

/** The `transfer_end` envelope of a handoff: into the session's lane, after whatever it already holds. */
export function transferEndEnvelope(
  session: Pick<SessionRecord, 'bot' | 'channel' | 'nativeKey'>,
  handoffId: string,
  reason: TransferEndReason,
): EnvelopeInput {
  return {
    id: transferEndId(session.channel, handoffId),
    kind: TRANSFER_END_KIND,
    channel: session.channel,
    bot: session.bot,
    ...identityOfNativeKey(session.nativeKey),
    text: '',
    meta: {},
    end: { reason, handoffId },
    receivedAt: new Date().toISOString(),
  };
}

/** `{name}` in a bot's `handoff.joinedText`. */
export const joinedText = (template: string, agent: Pick<AgentRecord, 'name'>) =>
  template.replaceAll('{name}', agent.name);

export interface HandoffDeps {
  db: Db;
  ingress: Ingress;
  bots: BotRegistry;
  events: AgentEventLog;
  logger: Logger;
  /** Sends an outbound reply into a session's lane (the agent's words, the joined text, a note). */
  sendThroughLane(envelope: EnvelopeInput): Promise<void>;
}

/** What agents do to conversations, and the ways a handoff ends; the engine side is in the engine. */
export class HandoffService {
  constructor(private readonly d: HandoffDeps) {}

  get events(): AgentEventLog {
    return this.d.events;
  }

  get ingress(): Ingress {
    return this.d.ingress;
  }

  async claim(session: SessionRecord, agent: AgentRecord): Promise<ClaimResult> {
    const result = await claimHandoff(this.d.db, session.id, agent);
    if (result.outcome !== 'claimed') return result;
    const { handoff } = result;
    this.d.logger.info({ event: 'handoff.claimed', sessionId: session.id, agentId: agent.id });
    await this.d.events.emit({
      type: 'conversation.assigned',
      sessionId: session.id,
      bot: session.bot,
      agentId: agent.id,
      queue: handoff.queue,
      data: { session_id: session.id, assigned_to: agent.id, agent_name: agent.name },
    });
    await this.announce(session, agent, handoff.id);
    return result;
  }

  /** Tells the person who joined (`handoff.joinedText`), through the session's lane. */
  async announce(session: SessionRecord, agent: AgentRecord, handoffId: string): Promise<void> {
    const template = this.d.bots.has(session.bot)
      ? this.d.bots.get(session.bot).settings.handoff.joinedText
      : '{name} joined the conversation';
    const text = joinedText(template, agent);
    if (text.trim() === '') return;
    await this.d.sendThroughLane(
      this.outbound(session, `joined:${handoffId}:${agent.id}`, text, { role: 'assistant' }),
    );
  }

  /** The agent's words to the person: recorded as role `agent` and sent on the person's channel. */
  async say(session: SessionRecord, agent: AgentRecord, text: string): Promise<string> {
    const messageId = randomUUID();
    await this.d.sendThroughLane(
      this.outbound(session, `message:${messageId}`, text, { role: 'agent', agentId: agent.id }),
    );
    return messageId;
  }

  /** An internal note: role `note`, in the history, never sent and never shown to the person. */
  async note(session: SessionRecord, agent: AgentRecord, text: string): Promise<string> {
    const noteId = randomUUID();
    await this.d.sendThroughLane(
      this.outbound(session, `note:${noteId}`, text, { role: 'note', agentId: agent.id }),
    );
    return noteId;
  }

  private outbound(
    session: SessionRecord,
    localId: string,
    text: string,
    who: { role: 'assistant' | 'agent' | 'note'; agentId?: string },
  ): EnvelopeInput {
    return outboundEnvelope(session, {
      id: `${session.id}:${localId}`,
      text,
      role: who.role,
      ...(who.agentId ? { agentId: who.agentId } : {}),
      origin: { type: 'agent', id: who.agentId ?? 'hub' },
    });
  }

  /** Hands the conversation to another agent who serves its bot; 'not_holder' when `from` does not hold it. */
  async transfer(
    session: SessionRecord,
    from: AgentRecord,
    toId: string,
  ): Promise<
    | { outcome: 'transferred'; handoff: HandoffRecord; to: AgentRecord }
    | { outcome: 'unknown_agent' | 'not_serving' | 'not_holder' }
  > {
    const to = await getAgent(this.d.db, toId);
    if (!to) return { outcome: 'unknown_agent' };
    if (!servesBot(to, session.bot)) return { outcome: 'not_serving' };
    const handoff = await transferHandoff(
      this.d.db,
      session.id,
      from.role === 'agent' ? from.id : null,
      to.id,
    );
    if (!handoff) return { outcome: 'not_holder' };
    this.d.logger.info({ event: 'handoff.transferred', sessionId: session.id, from: from.id, to: to.id });
    await this.d.events.emit({
      type: 'conversation.assigned',
      sessionId: session.id,
      bot: session.bot,
      agentId: to.id,
      queue: handoff.queue,
      data: { session_id: session.id, assigned_to: to.id, agent_name: to.name, transferred_by: from.id },
    });
    await this.announce(session, to, `${handoff.id}:${randomUUID()}`);
    return { outcome: 'transferred', handoff, to };
  }

  /** The holder (or a supervisor) gives the conversation back to the bot. */
  async release(session: SessionRecord, agent: AgentRecord): Promise<HandoffRecord | undefined> {
    const ended = await endHandoff(
      this.d.db,
      { sessionId: session.id, agentId: agent.role === 'agent' ? agent.id : null },
      'released',
    );
    if (ended) await this.ended(ended, 'released', session);
    return ended;
  }

  /** A handoff's wait timer fired: back to the bot, unless an agent took it meanwhile. */
  async timeout(handoffId: string): Promise<boolean> {
    const ended = await endHandoff(this.d.db, { id: handoffId, state: 'waiting' }, 'timeout');
    if (ended) await this.ended(ended, 'timeout');
    return ended !== undefined;
  }

  /** An agent went offline (status, removal): each of their conversations goes back to the bot. */
  async agentGone(agentId: string): Promise<number> {
    let count = 0;
    for (const h of await openHandoffsOfAgent(this.d.db, agentId)) {
      const ended = await endHandoff(this.d.db, { id: h.id, agentId }, 'agent_offline');
      if (ended) {
        count++;
        await this.ended(ended, 'agent_offline');
      }
    }
    return count;
  }

  /** The periodic check: conversations of agents with no console for AGENT_ABSENT_MS go back. */
  async releaseAbsent(absentMs = AGENT_ABSENT_MS): Promise<number> {
    let count = 0;
    for (const h of await handoffsOfAbsentAgents(this.d.db, absentMs)) {
      const ended = await endHandoff(this.d.db, { id: h.id, agentId: h.agentId }, 'agent_offline');
      if (ended) {
        count++;
        await this.ended(ended, 'agent_offline');
      }
    }
    return count;
  }

  /** After a handoff row ended: the session's lane learns it (ON TRANSFER END runs), consoles too. */
  private async ended(h: HandoffRecord, reason: TransferEndReason, known?: SessionRecord): Promise<void> {
    const session = known ?? (await this.sessionOf(h.sessionId));
    this.d.logger.info({ event: 'handoff.ended', sessionId: h.sessionId, handoffId: h.id, reason });
    if (session && !session.endedAt) await this.d.ingress.accept(transferEndEnvelope(session, h.id, reason));
    await this.d.events.emit({
      type: 'conversation.released',
      sessionId: h.sessionId,
      bot: h.bot,
      agentId: h.agentId,
      queue: h.queue,
      data: { session_id: h.sessionId, reason },
    });
  }

  private async sessionOf(id: string): Promise<SessionRecord | undefined> {
    return (await loadSnapshot(this.d.db, id))?.session;
  }

  /** The open handoff of a session, if any. */
  openOf(sessionId: string): Promise<HandoffRecord | undefined> {
    return openHandoffOf(this.d.db, sessionId);
  }
}
