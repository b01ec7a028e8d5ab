import { type SessionEvent, sessionTopic } from '../../src/bus/bus.ts';
import { clientAttachments, clientCards } from '../../src/files/client-view.ts';
import { IDLE_END_REASON } from '../../src/lifecycle/rules.ts';
import { isPersonFacing, type MessageRecord } from '../../src/store/records.ts';
import type { Connection } from './connection.ts';
import type { WebGateway } from './gateway.ts';
import type { ServerFrame, SuggestionItem } from './protocol.ts';

/** History rows read per query when a socket catches up. */
const PAGE_SIZE = 200;

/**
 * The sockets of one session on this gateway, and its bus subscription. Catching up (after a
 * hello, after each committed turn) runs one at a time through `run`, so each socket receives
 * every message once and in sequence order.
 */
export class Room {
  readonly connections = new Set<Connection>();
  /** Sockets waiting for the subscription before they join (`arrive`, then `join` or `abandon`). */
  private arriving = 0;
  private readonly ready: Promise<void>;
  private unsubscribe: Promise<(() => Promise<void>) | undefined>;
  /** The catch-ups in hand, one after another; none once idle. */
  private chain: Promise<void> | undefined;

  constructor(
    private readonly gateway: WebGateway,
    readonly sessionId: string,
  ) {
    const subscription = gateway.host.bus.subscribe(sessionTopic(sessionId), (m) =>
      this.onEvent(m as SessionEvent),
    );
    this.ready = subscription.then(
      () => undefined,
      (err: Error) => {
        // A room that could not subscribe is not reused: the next hello tries again.
        if (gateway.rooms.get(sessionId) === this) gateway.rooms.delete(sessionId);
        throw err;
      },
    );
    this.ready.catch(() => undefined);
    this.unsubscribe = subscription.catch(() => undefined);
  }

  /** The sockets of the session here: in the room, and on their way in. */
  get size(): number {
    return this.connections.size + this.arriving;
  }

  /**
   * Waits for the subscription on behalf of a socket that means to join; it then either joins or
   * gives up (`abandon`). Until then it counts as here, so that another socket giving up or leaving
   * meanwhile does not drop (and unsubscribe) the room from under it.
   */
  arrive(): Promise<void> {
    this.arriving++;
    return this.ready;
  }

  /** A socket that `arrive`d joins. */
  join(connection: Connection): void {
    this.arriving--;
    this.connections.add(connection);
  }

  /** A socket that `arrive`d does not join after all (it closed, or the subscription failed). */
  abandon(): void {
    this.arriving--;
    this.dropIfEmpty();
  }

  /** A socket that joined leaves; any other is not here and changes nothing. */
  leave(connection: Connection): void {
    if (this.connections.delete(connection)) this.dropIfEmpty();
  }

  /** The last socket left and none is on its way: the room goes, and its subscription. */
  private dropIfEmpty(): void {
    if (this.connections.size > 0 || this.arriving > 0) return;
    if (this.gateway.rooms.get(this.sessionId) !== this) return;
    this.gateway.rooms.delete(this.sessionId);
    void this.unsubscribe.then((off) => off?.()).catch(() => undefined);
  }

  /** Runs after everything queued before it; a failure is logged and does not stop the queue. */
  run(task: () => Promise<void>): Promise<void> {
    const next = (this.chain ?? Promise.resolve()).then(task).catch((err: Error) => {
      this.gateway.log.warn({ event: 'web.sync_failed', sessionId: this.sessionId, err: err.message });
    });
    this.chain = next;
    void next.then(() => {
      if (this.chain === next) this.chain = undefined;
    });
    return next;
  }

  private onEvent(event: SessionEvent): void {
    switch (event.type) {
      case 'turn.started':
      case 'agent.typing':
        for (const c of this.connections) c.send({ type: 'typing', active: true });
        return;
      case 'turn.chunk':
        for (const c of this.connections)
          c.send({ type: 'chunk', inReplyTo: event.envelopeId, index: event.index, text: event.text });
        return;
      case 'token.replaced':
        for (const c of [...this.connections]) c.tokenReplaced(event.tokenHash);
        return;
      case 'session.erased':
        // The person was erased: their sockets are told the session ended, as for any final end.
        void this.run(async () => this.end('erased'));
        return;
      case 'turn.completed':
        for (const c of this.connections) c.lastActivityAt = Date.now();
        void this.run(async () => {
          await this.catchUp([...this.connections]);
          for (const c of this.connections) c.send({ type: 'typing', active: false });
          if (event.ended) this.end(event.endReason);
        });
        return;
    }
  }

  /**
   * The bus subscription was lost and is back (`Bus.onResubscribed`): what the notices of the gap
   * would have brought is read from the history, as after a turn, and a typing shown by a notice
   * whose turn's end was missed is cleared.
   */
  resync(): void {
    void this.run(async () => {
      await this.catchUp([...this.connections]);
      for (const c of this.connections) c.send({ type: 'typing', active: false });
    });
  }

  /** The session ended (by its user in another tab, by the bot, by an operator): every socket here is told. */
  private end(reason: string | undefined): void {
    for (const c of [...this.connections]) {
      // An idle-out hands the token to a new session: follow it there. Any other end is final.
      if (reason === IDLE_END_REASON) c.followToken(this.sessionId);
      else c.unbind(true);
    }
  }

  /**
   * Sends each socket the rows after its own cursor, oldest first, reading the history once for
   * all of them. The rows (not the bus event) are the source, so a socket that missed an event
   * or joined late still gets everything, and nothing twice.
   */
  async catchUp(targets: Connection[]): Promise<void> {
    if (targets.length === 0) return;
    let after = Math.min(...targets.map((t) => t.cursor));
    let last: MessageRecord | undefined;
    for (;;) {
      const rows = await this.gateway.host.history.page(this.sessionId, {
        afterSeq: after,
        limit: PAGE_SIZE,
      });
      for (const row of rows) {
        const frame = toMessageFrame(row, (id) => this.gateway.host.files.signedPath(id));
        // Encoded once for every socket of the session (tabs), not once per socket.
        let data: string | undefined;
        for (const t of targets) {
          if (row.seq <= t.cursor || t.session?.id !== this.sessionId) continue;
          if (frame) {
            data ??= JSON.stringify(frame);
            t.sendEncoded(data);
          }
          t.cursor = row.seq;
        }
      }
      last = rows.at(-1) ?? last;
      if (rows.length < PAGE_SIZE || !last) break;
      after = last.seq;
    }
    const items = last?.role === 'assistant' ? suggestionsOf(last) : undefined;
    if (last && items)
      for (const t of targets)
        if (t.cursor === last.seq) t.send({ type: 'suggestions', seq: last.seq, items });
  }
}

const suggestionsOf = (row: MessageRecord): SuggestionItem[] | undefined =>
  row.payload.suggestions?.length
    ? row.payload.suggestions.map((s) => ({ text: s.text, value: s.value ?? s.text }))
    : undefined;

/** The client's own id of a user message, from its envelope id `web:<session>:<client id>`. */
function clientIdOf(row: MessageRecord): string | undefined {
  const prefix = `web:${row.sessionId}:`;
  return row.envelopeId?.startsWith(prefix) ? row.envelopeId.slice(prefix.length) : undefined;
}

export function toMessageFrame(
  row: MessageRecord,
  link: (fileId: string) => string = (id) => `/api/files/${id}`,
): ServerFrame | undefined {
  if (!isPersonFacing(row.role)) return undefined;
  const attachments = clientAttachments(row.payload.attachments, link);
  const cards = clientCards(row.payload.cards, link);
  const suggestions = suggestionsOf(row);
  const clientId = row.role === 'user' ? clientIdOf(row) : undefined;
  return {
    type: 'message',
    seq: row.seq,
    role: row.role,
    text: row.content,
    createdAt: row.createdAt,
    ...(clientId ? { clientId } : {}),
    ...(row.inReplyTo ? { inReplyTo: row.inReplyTo } : {}),
    ...(suggestions ? { suggestions } : {}),
    ...(attachments.length ? { attachments } : {}),
    ...(cards.length ? { cards } : {}),
    ...(row.payload.textIsFallback ? { textIsFallback: true } : {}),
  };
}
