import type { Logger } from '../logger.ts';
import type { Db } from '../store/db.ts';
import {
  commitsAlone,
  commitTurn,
  commitTurnBatch,
  isUniqueViolation,
  type TurnCommitResult,
  type TurnWrite,
} from '../store/turns.ts';
import {
  activeContext,
  activeSpan,
  type Context,
  inSpan,
  type Link,
  rootContext,
  tracingEnabled,
} from '../telemetry/tracing.ts';

/** Most turns in one statement; more wait for the next round. */
export const MAX_BATCH_TURNS = 256;

interface Pending {
  write: TurnWrite;
  /** The committing turn's context (tracing on): a commit of this turn alone is its child. */
  context?: Context;
  /**
   * The spans the commit links to (tracing on): the committing turn's, unless the commit is its
   * child, and those of the turns held before it that this write commits too (src/engine/engine.ts).
   */
  links?: Link[];
  resolve: (result: TurnCommitResult) => void;
  reject: (err: unknown) => void;
}

const NO_KEYS: readonly string[] = [];

/** The memory keys a turn writes (most turns: none, and no array is made for them). */
function memoryKeysOf(write: TurnWrite): readonly string[] {
  const userMemory = write.userMemory ?? [];
  if (write.memory.length === 0 && userMemory.length === 0) return NO_KEYS;
  return [
    ...write.memory.map((m) => `bot\u0000${write.bot}\u0000${m.key}`),
    ...userMemory.map((m) => `user\u0000${write.userId}\u0000${m.key}`),
  ];
}

/**
 * Group commit. Turns handed in while a commit is in flight are committed together by the next
 * one, in one statement: one transaction and one fsync for many sessions. At low load a turn
 * commits at once, alone; under load the batches grow by themselves. Each turn still gets its
 * own result.
 */
export class GroupCommitter {
  private pending: Pending[] = [];
  private flushing = false;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
  ) {}

  /** `held`: the spans of held turns this write commits too (tracing on), for links. */
  commit(write: TurnWrite, held?: Link[]): Promise<TurnCommitResult> {
    return new Promise((resolve, reject) => {
      const span = tracingEnabled() ? activeSpan() : undefined;
      const own = span?.spanContext();
      this.pending.push({
        write,
        resolve,
        reject,
        ...(own
          ? {
              context: activeContext(),
              links: [{ context: own }, ...(held ?? []).filter((l) => l.context.spanId !== own.spanId)],
            }
          : held?.length
            ? { links: held }
            : {}),
      });
      if (!this.flushing) {
        this.flushing = true;
        // Let the turns handed in during this tick join the first batch.
        setImmediate(() => void this.flush());
      }
    });
  }

  /** Takes a batch: one turn per session, one write per memory key; the rest waits a round. */
  private take(): Pending[] {
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    const sessions = new Set<string>();
    const memoryKeys = new Set<string>();
    for (const p of this.pending) {
      const keys = memoryKeysOf(p.write);
      // A turn that makes its session a user, writes sub-sessions or opens or closes a handoff commits alone (see commitsAlone).
      const alone = commitsAlone(p.write) || (batch[0] !== undefined && commitsAlone(batch[0].write));
      if (
        (alone && batch.length > 0) ||
        batch.length >= MAX_BATCH_TURNS ||
        sessions.has(p.write.sessionId) ||
        keys.some((k) => memoryKeys.has(k))
      ) {
        rest.push(p);
        continue;
      }
      batch.push(p);
      sessions.add(p.write.sessionId);
      for (const k of keys) memoryKeys.add(k);
    }
    this.pending = rest;
    return batch;
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.take();
      await this.commitBatch(batch);
    }
    this.flushing = false;
  }

  /**
   * With tracing on, one `switchboard.commit` span per statement, not per turn: a turn committed
   * alone gets it as its child (linked to the turns held before it that its write commits too); a
   * statement of several sessions' writes is a span of its own (in no turn's trace, they are
   * many), linked to each turn's span, held ones included. Under load the batches grow, and the
   * commit's share of the spans shrinks with them. `switchboard.commit.turns` counts the turns
   * (the messages), a held one included.
   */
  private commitBatch(batch: Pending[]): Promise<void> {
    if (!tracingEnabled()) return this.commitTogether(batch);
    const alone = batch.length === 1 ? batch[0]!.context : undefined;
    const links = alone ? batch[0]!.links!.slice(1) : batch.flatMap((p) => p.links ?? []);
    return inSpan(
      'switchboard.commit',
      {
        parent: alone ?? rootContext(),
        ...(links.length > 0 ? { links } : {}),
        attributes: {
          'switchboard.commit.turns': batch.reduce((n, p) => n + 1 + (p.write.chained?.length ?? 0), 0),
        },
      },
      () => this.commitTogether(batch),
    );
  }

  private async commitTogether(batch: Pending[]): Promise<void> {
    const started = Date.now();
    this.logger.debug({ event: 'commit.batch_start', turns: batch.length, waiting: this.pending.length });
    try {
      const results =
        batch.length === 1 && commitsAlone(batch[0]!.write)
          ? [await commitTurn(this.db, batch[0]!.write)]
          : await commitTurnBatch(
              this.db,
              batch.map((p) => p.write),
            );
      this.logger.debug({ event: 'commit.batch_done', turns: batch.length, ms: Date.now() - started });
      for (const [i, p] of batch.entries()) p.resolve(results[i]!);
    } catch (err) {
      this.logger.debug({
        event: 'commit.batch_failed',
        turns: batch.length,
        ms: Date.now() - started,
        err: (err as Error).message,
      });
      if (!isUniqueViolation(err)) {
        for (const p of batch) p.reject(err);
        return;
      }
      // A concurrent writer recorded one of these envelopes: sort them out one by one.
      this.logger.debug({ event: 'commit.batch_split', turns: batch.length });
      for (const p of batch) {
        try {
          p.resolve(await commitTurn(this.db, p.write));
        } catch (e) {
          p.reject(e);
        }
      }
    }
  }
}
