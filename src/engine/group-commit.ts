import { isTransient } from '../errors.ts';
import { type Logger, lazyChild, NO_BINDINGS } from '../logger.ts';
import type { Db } from '../store/db.ts';
import {
  commitsAlone,
  commitTurn,
  commitTurnBatch,
  isUniqueViolation,
  type TurnCommitResult,
  type TurnWrite,
} from '../store/turns.ts';
import { commitSpanOptions } from '../telemetry/envelope-spans.ts';
import {
  activeContext,
  type Context,
  inPassedSpan,
  type Link,
  rootContext,
  spanIn,
  tracingEnabled,
} from '../telemetry/tracing.ts';

/** Most turns in one statement; more wait for the next round. */
export const MAX_BATCH_TURNS = 256;

/**
 * Most history rows (messages: each turn's inbound row, replies and notes, its held turns' too)
 * in one statement; the turns that would pass it wait for the next round. A lane's held turns
 * ride in one write, so 256 turns were once 2,740 messages and a 350–735 ms statement that every
 * turn in it waited for. A write larger than the cap goes in a statement of its own.
 */
export const MAX_BATCH_MESSAGES = 1024;

/** The history rows a write adds (see MAX_BATCH_MESSAGES). */
function messagesOf(write: TurnWrite): number {
  let n = 1 + write.replies.length + (write.notes?.length ?? 0);
  if (write.chained) for (const c of write.chained) n += 1 + c.replies.length + (c.notes?.length ?? 0);
  return n;
}

interface Pending {
  write: TurnWrite;
  /** The committing turn's context (tracing on): a commit of this turn alone is its child. */
  context: Context | undefined;
  /**
   * The spans the commit links to (tracing on): the committing turn's, unless the commit is its
   * child, and those of the turns held before it that this write commits too (src/engine/engine.ts).
   */
  links: Link[] | undefined;
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
 * Most batches one process has in flight. With one, a worker's lanes fell into lock step under
 * load: every lane waited on the one statement (hundreds of ms for ~2,000 messages), then all
 * computed their next turns while PostgreSQL idled, then all waited again. Several in flight let
 * PostgreSQL write one batch while the worker computes the next (PostgreSQL coalesces their fsyncs).
 */
export const MAX_BATCHES_IN_FLIGHT = 4;

/**
 * Group commit. Turns handed in while commits are in flight are committed together by the next
 * one, in one statement: one transaction and one fsync for many sessions. At low load a turn
 * commits at once, alone; under load the batches grow by themselves. Each turn still gets its
 * own result. Batches in flight at once touch disjoint sessions and memory keys, so a session's
 * writes (and a key's) still commit in the order they were handed in; a turn that commits alone
 * (see commitsAlone) waits until no batch is in flight, and none starts beside it.
 */
export class GroupCommitter {
  private pending: Pending[] = [];
  private scheduled = false;
  private inFlight = 0;
  /** A batch in flight that commits alone: nothing starts beside it. */
  private aloneInFlight = false;
  /** Sessions and memory keys of the batches in flight. */
  private readonly busySessions = new Set<string>();
  private readonly busyKeys = new Set<string>();

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
  ) {}

  /**
   * `held`: the spans of held turns this write commits too (tracing on), for links. `trace`: the
   * committing turn's context (the engine hands it down; the active one when not given).
   */
  commit(write: TurnWrite, held?: Link[], trace?: Context): Promise<TurnCommitResult> {
    return new Promise((resolve, reject) => {
      // Every pending turn of one shape (what is absent is there, undefined): every turn takes this.
      let context: Context | undefined;
      let links: Link[] | undefined;
      if (tracingEnabled()) {
        const active = trace ?? activeContext();
        const own = spanIn(active)?.spanContext();
        if (own) {
          context = active;
          links = [{ context: own }];
          if (held) for (const l of held) if (l.context.spanId !== own.spanId) links.push(l);
        } else if (held?.length) links = held;
      }
      this.pending.push({ write, context, links, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // Let the turns handed in during this tick join the first batch.
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  /** Starts batches while there is room in flight and pending turns that may go now. */
  private pump(): void {
    while (this.inFlight < MAX_BATCHES_IN_FLIGHT && !this.aloneInFlight && this.pending.length > 0) {
      const batch = this.take();
      if (batch.length === 0) return;
      const alone = commitsAlone(batch[0]!.write);
      const keys = batch.flatMap((p) => memoryKeysOf(p.write));
      this.inFlight++;
      this.aloneInFlight = alone;
      for (const p of batch) this.busySessions.add(p.write.sessionId);
      for (const k of keys) this.busyKeys.add(k);
      void this.commitBatch(batch).finally(() => {
        this.inFlight--;
        if (alone) this.aloneInFlight = false;
        for (const p of batch) this.busySessions.delete(p.write.sessionId);
        for (const k of keys) this.busyKeys.delete(k);
        this.pump();
      });
    }
  }

  /**
   * Takes a batch: one turn per session, one write per memory key, none of them in a batch in
   * flight; the rest waits a round. A session's later turns wait behind its first one.
   */
  private take(): Pending[] {
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    const sessions = new Set<string>(this.busySessions);
    const memoryKeys = new Set<string>(this.busyKeys);
    let messages = 0;
    for (const [i, p] of this.pending.entries()) {
      // A turn that commits alone while batches are in flight waits for them, and the turns
      // handed in after it wait with it (else a steady load would keep it waiting forever).
      if (this.inFlight > 0 && commitsAlone(p.write)) {
        rest.push(...this.pending.slice(i));
        break;
      }
      const keys = memoryKeysOf(p.write);
      // A turn that makes its session a user, writes sub-sessions or opens or closes a handoff commits alone (see commitsAlone).
      const alone = commitsAlone(p.write) || (batch[0] !== undefined && commitsAlone(batch[0].write));
      const size = messagesOf(p.write);
      if (
        (alone && batch.length > 0) ||
        batch.length >= MAX_BATCH_TURNS ||
        (batch.length > 0 && messages + size > MAX_BATCH_MESSAGES) ||
        sessions.has(p.write.sessionId) ||
        keys.some((k) => memoryKeys.has(k))
      ) {
        rest.push(p);
        // A session's later turns never pass this one.
        sessions.add(p.write.sessionId);
        continue;
      }
      batch.push(p);
      messages += size;
      sessions.add(p.write.sessionId);
      for (const k of keys) memoryKeys.add(k);
    }
    this.pending = rest;
    return batch;
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
    const links = alone ? batch[0]!.links!.slice(1) : linksOf(batch);
    // Handed down, not made active: nothing inside starts a span (see inPassedSpan).
    return inPassedSpan(
      'switchboard.commit',
      commitSpanOptions(
        batch.reduce((n, p) => n + 1 + (p.write.chained?.length ?? 0), 0),
        links.length > 0 ? links : undefined,
        alone ?? rootContext(),
      ),
      (_span, trace) => this.commitTogether(batch, trace),
    );
  }

  /** `trace`: the commit's span's context (tracing on): its log lines carry its ids. */
  private async commitTogether(batch: Pending[], trace?: Context): Promise<void> {
    const started = Date.now();
    // A lazy child is made only for a line that is written: at the usual levels, none here.
    const logger = trace ? lazyChild(this.logger, NO_BINDINGS, trace) : this.logger;
    logger.debug({ event: 'commit.batch_start', turns: batch.length, waiting: this.pending.length });
    try {
      const results =
        batch.length === 1 && commitsAlone(batch[0]!.write)
          ? [await commitTurn(this.db, batch[0]!.write)]
          : await commitTurnBatch(
              this.db,
              batch.map((p) => p.write),
            );
      logger.debug({ event: 'commit.batch_done', turns: batch.length, ms: Date.now() - started });
      for (const [i, p] of batch.entries()) p.resolve(results[i]!);
    } catch (err) {
      logger.debug({
        event: 'commit.batch_failed',
        turns: batch.length,
        ms: Date.now() - started,
        err: (err as Error).message,
      });
      const duplicate = isUniqueViolation(err);
      // The database away (a dropped connection, a restart) fails every turn alike: they go back
      // to the queue together. So does a turn that was alone: its own commit would fail the same.
      if (!duplicate && (isTransient(err) || batch.length === 1)) {
        for (const p of batch) p.reject(err);
        return;
      }
      // A concurrent writer recorded one of these envelopes (a unique violation), or one turn holds
      // what PostgreSQL refuses: sort them out one by one, so that only that turn fails and the
      // other sessions' turns commit. Safe to do again: the statement wrote nothing, and each
      // commit is refused if its envelope is recorded or its state moved ('duplicate', 'conflict').
      if (duplicate) logger.debug({ event: 'commit.batch_split', turns: batch.length, reason: 'duplicate' });
      else
        logger.warn({
          event: 'commit.batch_split',
          turns: batch.length,
          reason: 'error',
          err: (err as Error).message,
        });
      let away: unknown;
      for (const p of batch) {
        // The database went away meanwhile: the rest go back to the queue without a try each.
        if (away !== undefined) {
          p.reject(away);
          continue;
        }
        try {
          p.resolve(await commitTurn(this.db, p.write));
        } catch (e) {
          if (isTransient(e)) away = e;
          else if (!duplicate)
            logger.warn({
              event: 'commit.turn_failed',
              envelopeId: p.write.inbound.envelopeId,
              sessionId: p.write.sessionId,
              err: (e as Error).message,
            });
          p.reject(e);
        }
      }
    }
  }
}

/**
 * Every pending turn's links, in order, in an array built by `push` as the spans' own link lists
 * are: the encoder iterates every span's links, and a `flatMap` array's map differed from theirs
 * (its optimized code, warmed on those, was thrown away at a worker's first batch commit).
 */
function linksOf(batch: Pending[]): Link[] {
  const links: Link[] = [];
  for (const p of batch) if (p.links) for (const link of p.links) links.push(link);
  return links;
}
