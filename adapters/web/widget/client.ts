import type { ClientFrameInput, ServerFrame } from '../protocol.ts';
import type { PendingMessage, UploadedFile, WidgetStorage } from './storage.ts';

export type MessageFrame = Extract<ServerFrame, { type: 'message' }>;
export type ChunkFrame = Extract<ServerFrame, { type: 'chunk' }>;
export type ErrorFrame = Extract<ServerFrame, { type: 'error' }>;
export type Status = 'connecting' | 'online' | 'offline' | 'ended' | 'failed';

/** What the client tells the view. */
export interface ClientEvents {
  status(status: Status, detail?: { retryInMs?: number; reason?: string }): void;
  /** The conversation shown is no longer this session's: clear it (a new one follows). */
  reset(): void;
  /**
   * The same person's next session (the old one idled out): the old conversation stays shown,
   * but its sequence numbers are no longer the session's (the new one's start again at 1).
   */
  renewed(): void;
  welcome(title: string): void;
  message(frame: MessageFrame): void;
  pending(item: PendingMessage, state: 'sending' | 'waiting' | 'failed', note?: string): void;
  typing(active: boolean): void;
  chunk(frame: ChunkFrame): void;
  suggestions(items: { text: string; value: string }[]): void;
}

export interface ClientOptions {
  url: string;
  /** The hub's origin, for its HTTP routes (file uploads). */
  hubOrigin: string;
  bot: string;
  /**
   * The hub's own page: the session lives in an HttpOnly cookie the page cannot read, opened by
   * POST to this address; storage then holds only the session id, for other tabs to follow.
   */
  cookieSessionUrl?: string;
  storage: WidgetStorage;
  pageUrl: string;
  language: string;
  events: ClientEvents;
}

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 15_000;
/** A socket that has not answered a ping in this long is dead even if the browser has not noticed. */
const PING_EVERY_MS = 25_000;
const PONG_WITHIN_MS = 10_000;
const ACK_DELAY_MS = 300;
/** Errors after which resending the same message cannot help. */
const FINAL_ERRORS = new Set(['empty_text', 'text_too_long', 'bad_frame', 'invalid_text', 'unknown_file']);
const CLOSE_BAD_TOKEN = 4401;
/** The token was replaced (a sign-in elsewhere): the stored one may be the new one. */
const CLOSE_TOKEN_REPLACED = 4410;
/**
 * How long a tab whose token was replaced waits for the tab that signed in to store the new one
 * (its storage event ends the wait) before it tries the old token, which the hub then refuses.
 */
const REPLACED_TOKEN_WAIT_MS = 5_000;
const CLOSE_UNKNOWN_BOT = 4404;

const messageFrame = (item: PendingMessage): ClientFrameInput => ({
  type: 'message',
  id: item.id,
  text: item.text,
  ...(item.files?.length ? { files: item.files.map((f) => f.file_id) } : {}),
});

/** 96 random bits as hex: a client message id (works on plain http, unlike randomUUID). */
export function newMessageId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The widget's connection: says hello with the stored token and the last sequence number
 * shown, keeps unsent messages in an outbox (in localStorage, so a reload keeps them too) until
 * the server acknowledges them, and reconnects with backoff. A resend carries the same id, so
 * the server processes it once.
 */
/** The refusals of an `authenticate` frame. */
const SIGN_IN_ERRORS: ReadonlySet<string> = new Set([
  'sign_in_disabled',
  'unauthorized',
  'invalid_credentials',
  'session_owned',
  'not_upgradable',
]);

export class ChatClient {
  private ws: WebSocket | undefined;
  private online = false;
  private attempt = 0;
  private retryTimer: number | undefined;
  private pingTimer: number | undefined;
  private pongTimer: number | undefined;
  private ackTimer: number | undefined;
  private rateTimer: number | undefined;
  private lastSeq = 0;
  private ackedSeq = 0;
  /** The token whose conversation is on screen (lastSeq belongs to it). */
  private shownToken: string | undefined;
  private sessionId: string | undefined;
  private outbox: PendingMessage[];
  private stopped = false;
  private signingIn:
    | { resolve: (v: { authLevel: string; userId: string }) => void; reject: (err: Error) => void }
    | undefined;

  constructor(private readonly o: ClientOptions) {
    this.outbox = o.storage.getOutbox();
    this.shownToken = o.storage.getToken();
    o.storage.onTokenChange((token) => this.tokenChanged(token));
    window.addEventListener('online', () => this.reconnectNow());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState !== 'visible') return;
      this.tokenChanged(o.storage.getToken());
      this.reconnectNow();
    });
  }

  start(): void {
    for (const item of this.outbox) this.o.events.pending(item, 'waiting');
    this.connect();
  }

  private get cookieMode(): boolean {
    return this.o.cookieSessionUrl !== undefined;
  }

  /**
   * Cookie mode: asks the hub for a new session; its token comes back only as a cookie, which the
   * next socket's handshake carries. Then connects (or retries when the hub says to wait).
   */
  private async openCookieSession(): Promise<void> {
    let res: Response;
    try {
      res = await fetch(this.o.cookieSessionUrl!, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ bot: this.o.bot }),
      });
    } catch {
      this.retryLater(this.backoff());
      return;
    }
    if (res.status === 201) {
      this.connect();
      return;
    }
    const wait = Number(res.headers.get('retry-after'));
    this.retryLater(wait > 0 ? wait * 1000 : this.backoff());
  }

  private backoff(): number {
    const delay = Math.round(
      Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt) * (0.5 + Math.random() / 2),
    );
    this.attempt++;
    return delay;
  }

  /** Queues a message; it is sent now when online, else after the next hello. */
  send(text: string, files: UploadedFile[] = []): void {
    const item: PendingMessage = { id: newMessageId(), text, ...(files.length ? { files } : {}) };
    this.outbox.push(item);
    this.o.storage.setOutbox(this.outbox);
    this.o.events.pending(item, this.online ? 'sending' : 'waiting');
    if (this.online) this.frame(messageFrame(item));
  }

  /**
   * Uploads a file into this conversation (`POST /api/session/files`): with the session's token,
   * or on the hub's own page with its cookie. Rejects with the hub's message (too large, a type
   * the chat does not take).
   */
  async upload(file: File): Promise<UploadedFile> {
    const form = new FormData();
    form.append('file', file, file.name);
    const token = this.cookieMode ? undefined : this.o.storage.getToken();
    if (!this.cookieMode && !token) throw new Error('the chat is not connected yet; try again in a moment');
    const res = await fetch(`${this.o.hubOrigin}/api/session/files?bot=${encodeURIComponent(this.o.bot)}`, {
      method: 'POST',
      body: form,
      credentials: this.cookieMode ? 'same-origin' : 'omit',
      ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
    }).catch(() => {
      throw new Error('the file could not be sent; check the connection');
    });
    const body = (await res.json().catch(() => ({}))) as UploadedFile & { error?: { message?: string } };
    if (res.status !== 201) throw new Error(body.error?.message ?? `the file was refused (${res.status})`);
    return { file_id: body.file_id, name: body.name, type: body.type, size: body.size };
  }

  /**
   * Signs this conversation in with the host site's JWT for its user. Resolves once the hub has
   * upgraded the session (the widget keeps the new token); rejects with the hub's reason.
   */
  authenticate(jwt: string): Promise<{ authLevel: string; userId: string }> {
    if (this.cookieMode)
      return Promise.reject(
        new Error("the hub's own chat page does not sign in; embed the widget on your site"),
      );
    if (!this.online) return Promise.reject(new Error('the chat is not connected; try again in a moment'));
    this.signingIn?.reject(new Error('superseded by a newer sign-in'));
    return new Promise((resolve, reject) => {
      this.signingIn = { resolve, reject };
      this.frame({ type: 'authenticate', jwt });
    });
  }

  /** Ends this conversation (for every tab) and starts a fresh session. */
  newConversation(): void {
    if (this.cookieMode) {
      // The hub ends the cookie's session and sets the next one's cookie, over HTTP; a new
      // socket's handshake carries it.
      this.o.storage.setToken(undefined);
      this.clearShown(undefined);
      this.leaveSocket();
      void this.openCookieSession();
      return;
    }
    if (this.online && this.shownToken) this.frame({ type: 'end' });
    this.o.storage.setToken(undefined);
    this.switchTo(undefined);
  }

  private frame(frame: ClientFrameInput): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  private connect(): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.o.events.status('connecting');
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.o.url);
    } catch (err) {
      // A URL the page may not open (an https page and an http hub): retrying cannot help.
      this.stopped = true;
      this.o.events.status('failed', { reason: (err as Error).message });
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.hello();
    ws.onmessage = (e) => {
      if (ws !== this.ws) return;
      this.heard();
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(e.data)) as ServerFrame;
      } catch {
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (e) => {
      if (ws !== this.ws) return;
      this.closed(e.code, e.reason);
    };
  }

  private hello(): void {
    const token = this.o.storage.getToken();
    if (token !== this.shownToken) this.clearShown(token);
    this.frame({
      type: 'hello',
      bot: this.o.bot,
      ...(this.cookieMode ? { cookie: true as const } : token ? { token } : {}),
      lastSeq: this.lastSeq,
      pageUrl: this.o.pageUrl,
      language: this.o.language,
    });
  }

  private clearShown(token: string | undefined): void {
    this.shownToken = token;
    this.sessionId = undefined;
    this.lastSeq = 0;
    this.ackedSeq = 0;
    this.o.events.reset();
    for (const item of this.outbox) this.o.events.pending(item, this.online ? 'sending' : 'waiting');
  }

  /** Another tab started a new conversation, or this tab did: show that one. */
  private switchTo(token: string | undefined): void {
    this.clearShown(token);
    this.online = false;
    if (this.cookieMode) {
      // The session is in the cookie, read by the server at the handshake: a new socket reads it.
      this.leaveSocket();
      this.connect();
      return;
    }
    if (this.ws?.readyState === WebSocket.OPEN) this.hello();
    else this.reconnectNow();
  }

  private tokenChanged(token: string | undefined): void {
    // An empty token here is another tab in the middle of starting over; its new token follows.
    if (token && token !== this.shownToken) this.switchTo(token);
  }

  private onFrame(frame: ServerFrame): void {
    const { events } = this.o;
    switch (frame.type) {
      case 'welcome':
        if (frame.token) {
          this.o.storage.setToken(frame.token);
          this.shownToken = frame.token;
        }
        if (this.cookieMode) {
          // Only the session id is stored: other tabs follow it, and nothing in it opens anything.
          if (this.o.storage.getToken() !== frame.sessionId) this.o.storage.setToken(frame.sessionId);
          this.shownToken = frame.sessionId;
        }
        // Same token, new session: the old one idled out. Its sequence numbers start again.
        if (this.sessionId && frame.sessionId !== this.sessionId) {
          this.lastSeq = 0;
          this.ackedSeq = 0;
          events.renewed();
        }
        this.sessionId = frame.sessionId;
        this.attempt = 0;
        this.online = true;
        events.welcome(frame.title);
        events.status('online');
        this.flushOutbox();
        return;
      case 'message':
        if (frame.seq <= this.lastSeq) return;
        this.lastSeq = frame.seq;
        if (frame.role === 'user' && frame.clientId) this.settle(frame.clientId);
        events.message(frame);
        if (frame.role === 'assistant' || frame.role === 'agent') this.scheduleAck();
        return;
      case 'typing':
        events.typing(frame.active);
        return;
      case 'chunk':
        events.chunk(frame);
        return;
      case 'suggestions':
        if (frame.seq === this.lastSeq) events.suggestions(frame.items);
        return;
      case 'ack':
        this.settle(frame.id);
        return;
      case 'error':
        this.onError(frame);
        return;
      case 'ended':
        // This tab may already have moved on to a new conversation.
        if (frame.sessionId !== this.sessionId) return;
        this.online = false;
        events.status('ended');
        // Another tab may have started the next conversation already.
        this.tokenChanged(this.o.storage.getToken());
        return;
      case 'authenticated':
        // Same conversation, new token: this tab keeps what it shows, other tabs follow the token.
        this.shownToken = frame.token;
        this.o.storage.setToken(frame.token);
        this.signingIn?.resolve({ authLevel: frame.authLevel, userId: frame.userId });
        this.signingIn = undefined;
        return;
      case 'pong':
        return;
    }
  }

  private onError(frame: ErrorFrame): void {
    if (SIGN_IN_ERRORS.has(frame.code) && this.signingIn) {
      this.signingIn.reject(new Error(frame.message));
      this.signingIn = undefined;
      return;
    }
    if (frame.code === 'rate_limited' && !frame.id && !this.online) {
      // The hello was refused: this address opened too many sessions. Come back when allowed.
      this.retryLater(frame.retryAfterMs ?? BACKOFF_CAP_MS);
      return;
    }
    const item = frame.id ? this.outbox.find((p) => p.id === frame.id) : undefined;
    if (!item) return;
    if (FINAL_ERRORS.has(frame.code)) {
      this.settle(item.id);
      this.o.events.pending(item, 'failed', frame.message);
    } else if (frame.code === 'rate_limited') {
      this.o.events.pending(item, 'waiting', frame.message);
      clearTimeout(this.rateTimer);
      this.rateTimer = window.setTimeout(() => this.flushOutbox(), frame.retryAfterMs ?? 1_000);
    } else {
      this.o.events.pending(item, 'waiting', frame.message);
    }
  }

  /** The message left the outbox: the server has it (or it can never be sent). */
  private settle(id: string): void {
    const before = this.outbox.length;
    this.outbox = this.outbox.filter((p) => p.id !== id);
    if (this.outbox.length !== before) this.o.storage.setOutbox(this.outbox);
  }

  private flushOutbox(): void {
    if (!this.online) return;
    for (const item of this.outbox) {
      this.o.events.pending(item, 'sending');
      this.frame(messageFrame(item));
    }
  }

  private scheduleAck(): void {
    if (this.ackTimer !== undefined) return;
    this.ackTimer = window.setTimeout(() => {
      this.ackTimer = undefined;
      if (this.online && this.lastSeq > this.ackedSeq) {
        this.ackedSeq = this.lastSeq;
        this.frame({ type: 'ack', seq: this.lastSeq });
      }
    }, ACK_DELAY_MS);
  }

  /** Any frame proves the socket alive; silence gets a ping, and a ping without answer a reconnect. */
  private heard(): void {
    clearTimeout(this.pongTimer);
    clearTimeout(this.pingTimer);
    this.pingTimer = window.setTimeout(() => {
      this.frame({ type: 'ping' });
      this.pongTimer = window.setTimeout(() => this.abandon(), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  /** The connection went silent: a closing handshake could take minutes, so move on at once. */
  private abandon(): void {
    const ws = this.ws;
    if (!ws) return;
    this.ws = undefined;
    ws.close();
    this.closed(1006, 'no answer');
  }

  private closed(code: number, reason: string): void {
    this.online = false;
    this.ws = undefined;
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    if (code === CLOSE_UNKNOWN_BOT) {
      this.stopped = true;
      this.o.events.status('failed', { reason });
      return;
    }
    if (this.cookieMode && (code === CLOSE_BAD_TOKEN || code === CLOSE_TOKEN_REPLACED)) {
      // No session in the cookie (or a dead one). Another tab may have opened the next one already.
      const stored = this.o.storage.getToken();
      if (stored && stored !== this.shownToken) {
        this.clearShown(stored);
        this.connect();
        return;
      }
      if (stored === this.shownToken) this.o.storage.setToken(undefined);
      this.clearShown(undefined);
      void this.openCookieSession();
      return;
    }
    if (code === CLOSE_TOKEN_REPLACED) {
      // Another tab (or the host site's server) signed the session in. If that tab stored the
      // new token, this one continues with it.
      const stored = this.o.storage.getToken();
      if (stored !== this.shownToken) {
        this.clearShown(stored);
        this.connect();
        return;
      }
      // The hub closes this socket before the signing tab has the new token to store. Saying
      // hello with the old one now would be refused (4401) and start a new conversation, over
      // the token that tab is about to store: wait for its storage event (tokenChanged connects
      // at once). Without one (the host site's server signed in) the hub refuses the old token
      // after the wait.
      this.o.events.status('connecting');
      this.retryTimer = window.setTimeout(() => this.connect(), REPLACED_TOKEN_WAIT_MS);
      return;
    }
    if (code === CLOSE_BAD_TOKEN) {
      // The session is gone (expired, ended). Another tab may already hold the next one.
      const stored = this.o.storage.getToken();
      if (stored === this.shownToken) this.o.storage.setToken(undefined);
      this.clearShown(stored === this.shownToken ? undefined : stored);
      this.connect();
      return;
    }
    const delay = Math.round(
      Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt) * (0.5 + Math.random() / 2),
    );
    this.attempt++;
    this.o.events.status('offline', { retryInMs: delay });
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }

  /** Closes the current socket without reacting to its close. */
  private leaveSocket(): void {
    const ws = this.ws;
    this.ws = undefined;
    this.online = false;
    ws?.close();
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    clearTimeout(this.retryTimer);
  }

  /** Leaves this socket and connects again after `delayMs`. */
  private retryLater(delayMs: number): void {
    this.leaveSocket();
    this.o.events.status('offline', { retryInMs: delayMs });
    this.retryTimer = window.setTimeout(() => this.connect(), delayMs);
  }

  private reconnectNow(): void {
    if (this.stopped || this.ws) return;
    this.attempt = 0;
    this.connect();
  }
}
