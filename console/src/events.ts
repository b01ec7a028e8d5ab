import { useEffect, useRef } from 'preact/hooks';

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

/**
 * One EventSource for the whole console, shared by every view. The browser reconnects by itself
 * and sends `Last-Event-ID`, so the hub replays what was missed while the connection was down.
 */
class EventHub {
  private source: EventSource | undefined;
  private readonly listeners = new Set<Listener>();

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    this.open();
    return () => {
      this.listeners.delete(listener);
    };
  }

  close(): void {
    this.source?.close();
    this.source = undefined;
  }

  private open(): void {
    if (this.source) return;
    const source = new EventSource('/api/agent/events', { withCredentials: true });
    // The hub writes `ready` once it has subscribed this stream, on every (re)connection.
    source.addEventListener('ready', () => this.emit({ type: STREAM_READY, data: {} }));
    for (const type of CONVERSATION_EVENTS) {
      source.addEventListener(type, (message) => {
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
