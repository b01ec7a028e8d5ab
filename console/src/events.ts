import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api } from './api.ts';

/** The agent API's event names (`GET /api/agent/events`, Server-Sent Events). */
export const CONVERSATION_EVENTS = [
  'conversation.waiting',
  'conversation.assigned',
  'conversation.message',
  'conversation.released',
] as const;
export type ConversationEventName = (typeof CONVERSATION_EVENTS)[number];

/**
 * Not an event of the API's: the stream has (re)connected and the hub has subscribed it. What
 * changed before then reached no listener, so every view reads its state again.
 */
export const STREAM_READY = 'stream.ready';

export interface ConversationEvent {
  type: ConversationEventName | typeof STREAM_READY;
  session_id?: string;
  data: Record<string, unknown>;
}

type Listener = (event: ConversationEvent) => void;
/** Told whether the stream is lost (true) or (re)connected (false). */
type ConnectionListener = (lost: boolean) => void;

/** The first wait before a stream the browser gave up on is opened again; it doubles up to the most. */
const REOPEN_FIRST_MS = 2_000;
const REOPEN_MOST_MS = 30_000;

/**
 * One EventSource for the whole console, shared by every view. The browser reconnects by itself
 * after a dropped connection and sends `Last-Event-ID`, so the hub replays what was missed. It
 * gives up when the hub answers with an error instead (a refused sign-in, a proxy's 502 while the
 * hub restarts): then the console asks who it is signed in as — a refused sign-in takes it back
 * to the sign-in form (`whenSignedOut`) — and otherwise opens the stream again, later and later.
 */
class EventHub {
  private source: EventSource | undefined;
  private readonly listeners = new Set<Listener>();
  private lastEventId = '';
  private reopenMs = REOPEN_FIRST_MS;
  private reopenTimer: ReturnType<typeof setTimeout> | undefined;
  /** A stream the browser gave up on is being looked into: none opens until it is done. */
  private waiting = false;
  /** Counts `close`s: an answer or a timer of a stream closed since does nothing. */
  private generation = 0;
  /** The stream broke and is not subscribed again yet: what happens meanwhile shows only later. */
  private lost = false;
  private readonly connectionListeners = new Set<ConnectionListener>();

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    this.open();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Whether the stream is lost now; `listener` hears every change until the returned function is called. */
  isLost(): boolean {
    return this.lost;
  }

  onConnection(listener: ConnectionListener): () => void {
    this.connectionListeners.add(listener);
    return () => {
      this.connectionListeners.delete(listener);
    };
  }

  close(): void {
    this.setLost(false);
    this.generation++;
    clearTimeout(this.reopenTimer);
    this.waiting = false;
    this.source?.close();
    this.source = undefined;
    this.lastEventId = '';
    this.reopenMs = REOPEN_FIRST_MS;
  }

  private open(): void {
    if (this.source || this.waiting) return;
    const resume = this.lastEventId ? `?last_event_id=${encodeURIComponent(this.lastEventId)}` : '';
    const source = new EventSource(`/api/agent/events${resume}`, { withCredentials: true });
    // The hub writes `ready` once it has subscribed this stream, on every (re)connection.
    source.addEventListener('ready', () => {
      this.reopenMs = REOPEN_FIRST_MS;
      this.setLost(false);
      this.emit({ type: STREAM_READY, data: {} });
    });
    source.addEventListener('error', () => {
      if (this.source !== source) return;
      // Reconnecting (the browser itself, or `gaveUp`): the agent is told until `ready`.
      this.setLost(true);
      if (source.readyState === EventSource.CLOSED) this.gaveUp();
    });
    for (const type of CONVERSATION_EVENTS) {
      source.addEventListener(type, (message) => {
        const { lastEventId } = message as MessageEvent;
        if (lastEventId) this.lastEventId = lastEventId;
        let data: Record<string, unknown> = {};
        try {
          data = JSON.parse((message as MessageEvent<string>).data) as Record<string, unknown>;
        } catch {
          // A malformed event is dropped; the next refresh shows the truth anyway.
        }
        const sessionId = typeof data.session_id === 'string' ? data.session_id : undefined;
        this.emit({ type, session_id: sessionId, data });
      });
    }
    this.source = source;
  }

  /** The browser will not reconnect this stream: signed out, or open it again after a while. */
  private gaveUp(): void {
    this.source = undefined;
    this.waiting = true;
    const generation = this.generation;
    const current = () => generation === this.generation;
    const reopenLater = () => {
      if (!current()) return;
      const wait = this.reopenMs;
      this.reopenMs = Math.min(wait * 2, REOPEN_MOST_MS);
      this.reopenTimer = setTimeout(() => {
        if (!current()) return;
        this.waiting = false;
        if (this.listeners.size > 0) this.open();
      }, wait);
    };
    // A refused sign-in ends here: `api` tells the app, which closes this hub.
    void api('GET', '/api/agent/me').then(reopenLater, (err: unknown) => {
      if (!(err instanceof ApiError && err.status === 401)) reopenLater();
    });
  }

  private setLost(lost: boolean): void {
    if (this.lost === lost) return;
    this.lost = lost;
    for (const listener of this.connectionListeners) listener(lost);
  }

  private emit(event: ConversationEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}

export const events = new EventHub();

/** Calls `onEvent` for every conversation event, and `STREAM_READY`, while the component is mounted. */
export function useConversationEvents(onEvent: Listener): void {
  const latest = useRef(onEvent);
  latest.current = onEvent;
  useEffect(() => events.subscribe((event) => latest.current(event)), []);
}

/** Whether the console's event stream is lost now (and being reconnected). */
export function useConnectionLost(): boolean {
  const [lost, setLost] = useState(() => events.isLost());
  useEffect(() => events.onConnection(setLost), []);
  return lost;
}
