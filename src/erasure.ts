import { type Bus, type SessionErased, sessionTopic } from './bus/bus.ts';
import type { SessionCache } from './cache/cache.ts';
import { deliveryRetryJobId } from './delivery/retry-job.ts';
import { waitTimeoutJobId } from './handoff/engine-side.ts';
import { AGENTS_TOPIC, type PublishedAgentEvent } from './handoff/events.ts';
import {
  defaultRecipient,
  type RateLimiter,
  rateNoticeKey,
  recipientKey,
  sessionMessagesKey,
  sessionUploadsKey,
} from './limits/rate-limiter.ts';
import type { Logger } from './logger.ts';
import { sendJobId } from './outbound/service.ts';
import type { Scheduler } from './scheduler/scheduler.ts';
import type { Db } from './store/db.ts';
import {
  type ErasedConversation,
  type ErasureHooks,
  eraseSessionRows,
  eraseUserRows,
  laneOf,
  type SessionsErasure,
} from './store/erasure.ts';
import { laneJobId } from './webhooks/dispatcher.ts';

export interface ErasureDeps {
  db: Db;
  cache: SessionCache;
  rateLimiter: RateLimiter;
  /** Jobs scheduled for the erased sessions (handoff timers, sends, webhook and delivery retries) go too. */
  scheduler: Pick<Scheduler, 'forget'>;
  /** Clears the Redis queues' memory of the erased sessions; absent on the in-process queue. */
  eraseQueueTraces?: (sessions: { id: string; lane: string }[]) => Promise<unknown>;
  /**
   * Tells the clients still connected to the erased sessions (a web widget's socket) that they
   * ended, and agents' consoles that the conversations they may show are gone.
   */
  bus?: Pick<Bus, 'publish'>;
  logger: Logger;
}

/** `conversation.released`'s reason when the session was erased. */
export const ERASED_REASON = 'erased';

export interface ErasureResult extends SessionsErasure {
  /** False when a cache or Redis step failed: those entries then live until their TTL. */
  cacheCleared: boolean;
}

/** What was erased, for the log lines (the user's id, or the session's). */
type Subject = { userId: string } | { sessionId: string };

/** The log lines of each kind of erasure. */
const LOG = {
  user: { failed: 'user.erase_cache_failed', noticeFailed: 'user.erase_notice_failed', done: 'user.erased' },
  session: {
    failed: 'session.erase_cache_failed',
    noticeFailed: 'session.erase_notice_failed',
    done: 'session.erased',
  },
} as const;
const logOf = (subject: Subject) => ('userId' in subject ? LOG.user : LOG.session);

/**
 * Erases a person: PostgreSQL first, in one transaction (the truth; once it commits the person
 * is gone), then every cache entry and rate-limit window keyed by their sessions. Undefined for
 * an unknown user. What stays, and why: envelopes still queued for them stay in their lanes,
 * and are dropped when their turn comes (their contacts are recorded as erased, see
 * src/store/erased-contacts.ts; a message accepted after the erasure starts a new session and
 * user, as any new contact does); other processes' in-memory copies of a snapshot live until
 * their short local TTL.
 */
export async function eraseUser(
  deps: ErasureDeps,
  userId: string,
  hooks?: ErasureHooks,
): Promise<ErasureResult | undefined> {
  const erased = await eraseUserRows(deps.db, userId, hooks);
  return erased && (await afterCommit(deps, { userId }, erased));
}

/**
 * Erases one session (and its sub-sessions) as `eraseUser` erases a person's: for a visitor with
 * no user (an anonymous web or API session, unverified mail), or one conversation of someone.
 * Undefined for an unknown session.
 */
export async function eraseSession(deps: ErasureDeps, sessionId: string): Promise<ErasureResult | undefined> {
  const erased = await eraseSessionRows(deps.db, sessionId);
  return erased && (await afterCommit(deps, { sessionId }, erased));
}

/** What outlives the transaction, cleared once it committed: caches, limits, jobs, Redis queue traces. */
async function afterCommit(
  deps: ErasureDeps,
  subject: Subject,
  erased: SessionsErasure,
): Promise<ErasureResult> {
  const log = logOf(subject);
  const sessions = erased.sessions.map((s) => ({ ...s, lane: laneOf(s) }));
  const steps: (() => Promise<unknown>)[] = sessions.flatMap((s) => [
    () => deps.cache.delete(s.id),
    () => deps.cache.deleteSessionId(s.lane),
    () => deps.rateLimiter.forget(sessionMessagesKey(s.lane)),
    () => deps.rateLimiter.forget(rateNoticeKey(s.lane)),
    () => deps.rateLimiter.forget(sessionUploadsKey(s.id)),
    () => deps.rateLimiter.forget(recipientKey(s.channel, defaultRecipient(s.nativeKey))),
  ]);
  const { handoffIds, outboundMessageIds, webhookLanes } = erased.scheduled;
  const jobs = [
    ...handoffIds.map(waitTimeoutJobId),
    ...outboundMessageIds.map(sendJobId),
    ...webhookLanes.map(laneJobId),
    // A reply's retry may be waiting (its rows are gone: the job would find nothing to send).
    ...sessions.map((s) => deliveryRetryJobId(s.id)),
  ];
  if (jobs.length > 0) steps.push(() => deps.scheduler.forget(jobs));
  if (deps.eraseQueueTraces) {
    const traces = deps.eraseQueueTraces;
    steps.push(() => traces(sessions.map(({ id, lane }) => ({ id, lane }))));
  }
  let cacheCleared = true;
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      cacheCleared = false;
      deps.logger.warn({ event: log.failed, ...subject, err: (err as Error).message });
    }
  }
  await tellConnectedClients(deps, subject, sessions);
  await tellAgents(deps, subject, erased.conversations);
  deps.logger.info({ event: log.done, ...subject, sessions: sessions.length, cacheCleared });
  return { ...erased, cacheCleared };
}

/** Best-effort: a client that misses it finds its session gone at its next message or reconnection. */
async function tellConnectedClients(
  deps: ErasureDeps,
  subject: Subject,
  sessions: { id: string }[],
): Promise<void> {
  const { bus } = deps;
  if (!bus) return;
  for (const { id } of sessions) {
    const erased: SessionErased = { type: 'session.erased', sessionId: id };
    await bus.publish(sessionTopic(id), erased).catch((err: Error) => {
      deps.logger.warn({ event: logOf(subject).noticeFailed, ...subject, sessionId: id, err: err.message });
    });
  }
}

/**
 * Agents' event streams, in every gateway: each erased conversation is released, reason `erased`,
 * to whoever could see it (its agent, its queue, supervisors), so a console showing it closes it.
 * Published only, never kept: `agent_events` went with the session. Best-effort: a console that
 * misses it finds the conversation gone when it next reads it.
 */
async function tellAgents(
  deps: ErasureDeps,
  subject: Subject,
  conversations: ErasedConversation[],
): Promise<void> {
  const { bus } = deps;
  if (!bus) return;
  for (const c of conversations) {
    const released: PublishedAgentEvent = {
      id: null,
      type: 'conversation.released',
      sessionId: c.sessionId,
      bot: c.bot,
      agentId: c.agentId,
      queue: c.queue,
      data: { session_id: c.sessionId, reason: ERASED_REASON },
      createdAt: new Date().toISOString(),
    };
    await bus.publish(AGENTS_TOPIC, released).catch((err: Error) => {
      deps.logger.warn({
        event: logOf(subject).noticeFailed,
        ...subject,
        sessionId: c.sessionId,
        err: err.message,
      });
    });
  }
}
