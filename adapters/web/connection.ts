import type { RawData, WebSocket } from 'ws';
import { SignInRefused } from '../../src/auth/sign-in-service.ts';
import { hashToken } from '../../src/auth/token.ts';
import { UnknownFileError, uploadedAttachments } from '../../src/files/attach.ts';
import { InvalidEnvelopeError, RateLimitedError } from '../../src/ingress.ts';
import { MINUTE_MS, sessionCreateKey, signInAttemptKey } from '../../src/limits/rate-limiter.ts';
import type { SessionRecord } from '../../src/store/records.ts';
import type { WebGateway } from './gateway.ts';
import { CLOSE, type ClientFrame, type ErrorCode, parseClientFrame, type ServerFrame } from './protocol.ts';
import type { Room } from './room.ts';

/**
 * The page a widget runs on, without its query and fragment: those can hold a password reset's
 * or a sign-in's token (`?token=…`, `#access_token=…`), which the hub must not keep in a session.
 */
function withoutQuery(pageUrl: string | undefined): string | undefined {
  return pageUrl?.split(/[?#]/, 1)[0];
}

/** A socket that comes back after a long time gets at most this many of the newest messages. */
export const MAX_REPLAY_MESSAGES = 500;
/**
 * Sockets one session may have on one gateway (its tabs); a further hello is refused with 4429.
 * One token could otherwise hold any number of sockets, each kept alive by the heartbeat.
 */
export const MAX_SOCKETS_PER_SESSION = 20;
/** Frames read but not yet handled; a client past this is flooding. */
const MAX_FRAMES_IN_FLIGHT = 32;
/** Bytes queued for a socket that does not read; past this it is closed. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
const DEFAULT_BOT = 'default';

/** What the handshake told about the client. */
export interface ClientInfo {
  ip: string | undefined;
  /** Session cookies (bot → token), read only from a handshake of the hub's own page. */
  cookies: ReadonlyMap<string, string>;
  userAgent: string | undefined;
  origin: string | undefined;
  acceptLanguage: string | undefined;
}

/** The socket's Connection, for the socket's event listeners below. */
const CONNECTION = Symbol('connection');
const connectionOf = (ws: WebSocket): Connection =>
  (ws as WebSocket & { [CONNECTION]: Connection })[CONNECTION];

/*
 * The socket's listeners are these few functions, shared by every socket (`this` is the socket),
 * rather than closures made for each: a gateway holds ten thousand idle sockets, and every
 * object kept for each one is paid ten thousand times (README, "Performance").
 */
function onSocketMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  connectionOf(this).onFrame(data, isBinary);
}
function onSocketPong(this: WebSocket): void {
  connectionOf(this).alive = true;
}
function onSocketError(this: WebSocket, err: Error): void {
  connectionOf(this).gateway.log.debug({ event: 'web.socket_error', err: err.message });
}
function onSocketClose(this: WebSocket): void {
  connectionOf(this).onClose();
}

/** What a message's envelope carries of the hello (`meta`). */
interface HelloMeta {
  pageUrl?: string | undefined;
  language?: string | undefined;
}

/** One socket: waits for `hello`, then carries one session's frames both ways. */
export class Connection {
  session: SessionRecord | undefined;
  /** The highest sequence number this socket has been sent (or told it has). */
  cursor = 0;
  private room: Room | undefined;
  alive = true;
  private inFlight = 0;
  /** The frames and follow-ups in hand, one after another; none: nothing in hand. */
  private chain: Promise<void> | undefined;
  private helloTimer: NodeJS.Timeout | undefined;
  private hello: HelloMeta | undefined;
  /** The token that opens `session`, to find its successor when it idles out. */
  private token: string | undefined;
  /**
   * The token of the session this socket opened (kept through its sign-in on this socket): while
   * it still opens a session, this socket may not open another.
   */
  private openedToken: string | undefined;
  /** Bound through the session cookie (the hub's own page): the token is never sent to the page. */
  private cookieMode = false;
  /** Set while this socket's own sign-in is in flight: a replacement heard meanwhile may be its own. */
  private signingIn: { replacedBy?: string } | undefined;
  /** When this socket last knew the session active: a message after a long quiet is checked against the database. */
  lastActivityAt = 0;

  constructor(
    readonly gateway: WebGateway,
    readonly ws: WebSocket,
    private readonly info: ClientInfo,
  ) {
    (ws as WebSocket & { [CONNECTION]: Connection })[CONNECTION] = this;
    ws.once('close', onSocketClose);
    ws.on('message', onSocketMessage);
    ws.on('pong', onSocketPong);
    ws.on('error', onSocketError);
    this.armHelloTimer();
  }

  /** Resolves once the socket has closed (made when asked: a gateway stopping asks, nobody else). */
  closed(): Promise<void> {
    if (this.ws.readyState === this.ws.CLOSED) return Promise.resolve();
    return new Promise((resolve) => this.ws.once('close', () => resolve()));
  }

  /**
   * Runs `task` (which handles its own errors) after everything in hand on this socket; the
   * chain is let go once it is idle.
   */
  private enqueue(task: () => Promise<void>): void {
    const next = (this.chain ?? Promise.resolve()).then(task).catch(() => undefined);
    this.chain = next;
    void next.then(() => {
      if (this.chain === next) this.chain = undefined;
    });
  }

  private get host() {
    return this.gateway.host;
  }

  beat(): void {
    if (!this.alive) {
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  send(frame: ServerFrame): void {
    this.sendEncoded(JSON.stringify(frame));
  }

  /** `send` with the frame already encoded: a room encodes a frame once for all its sockets. */
  sendEncoded(data: string): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (this.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.ws.close(CLOSE.TOO_SLOW, 'the client does not read its messages');
      return;
    }
    this.ws.send(data);
  }

  private error(code: ErrorCode, message: string, extra: { id?: string; retryAfterMs?: number } = {}): void {
    this.send({ type: 'error', code, message, ...extra });
  }

  /**
   * The bound session ended. If its token moved on to a new session (the session idled out and
   * another tab or gateway renewed it), this socket follows the token there with a new welcome;
   * otherwise the client is told the session ended.
   */
  followToken(sessionId: string): void {
    this.enqueue(async () => {
      try {
        if (this.session?.id !== sessionId) return;
        const next = this.token ? await this.host.sessions.forToken(this.token) : undefined;
        if (next && next.id === sessionId && next.endedAt) {
          // The idle sweep ended it and its token waits for the person: their next message here
          // starts the successor (asking the database, which knows it ended).
          this.lastActivityAt = 0;
          return;
        }
        if (!next && this.ws.readyState === this.ws.OPEN) {
          // The session renewed under a token this socket does not hold (it was replaced).
          this.closeReplaced();
          return;
        }
        if (!next || next.id === sessionId || this.ws.readyState !== this.ws.OPEN) {
          this.unbind(true);
          return;
        }
        this.unbind(false);
        await this.bind(next, this.token!, { lastSeq: 0 });
      } catch (err) {
        this.gateway.log.warn({ event: 'web.follow_failed', sessionId, err: (err as Error).message });
        this.unbind(true);
      }
    });
  }

  /**
   * The session's token is now the one hashed `tokenHash`. A socket holding another one may no
   * longer read or write the conversation: it is closed with 4410 (its own sign-in in flight
   * decides when it returns).
   */
  tokenReplaced(tokenHash: string): void {
    if (this.signingIn) {
      this.signingIn.replacedBy = tokenHash;
      return;
    }
    if (this.token && hashToken(this.token).toString('base64url') === tokenHash) return;
    this.closeReplaced();
  }

  private closeReplaced(): void {
    const sessionId = this.session?.id;
    this.unbind(false);
    this.gateway.log.info({ event: 'web.token_replaced', sessionId });
    this.ws.close(CLOSE.TOKEN_REPLACED, 'the session token was replaced');
  }

  private armHelloTimer(): void {
    this.clearHelloTimer();
    this.helloTimer = setTimeout(() => {
      this.helloTimer = undefined;
      if (!this.session) this.ws.close(CLOSE.HELLO_TIMEOUT, 'no hello in time');
    }, this.gateway.config.helloTimeoutMs);
    this.helloTimer.unref();
  }

  /** Cleared and let go: an idle socket keeps no timer object. */
  private clearHelloTimer(): void {
    if (this.helloTimer === undefined) return;
    clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
  }

  onFrame(data: RawData, isBinary: boolean): void {
    this.alive = true;
    if (isBinary) {
      this.error('bad_frame', 'frames are JSON text, not binary');
      return;
    }
    if (++this.inFlight > MAX_FRAMES_IN_FLIGHT) {
      this.ws.close(CLOSE.TOO_SLOW, 'too many frames at once');
      return;
    }
    const raw = data.toString();
    this.enqueue(() =>
      this.handle(raw)
        .catch((err: Error) => {
          this.gateway.log.error({ event: 'web.frame_failed', err: err.message, stack: err.stack });
          this.error('internal', 'something went wrong on our side; it has been logged');
          // A hello that failed (the database away) had stopped the hello timer: without it an
          // unbound socket would be kept for as long as it answers pings.
          if (!this.session && this.helloTimer === undefined && this.ws.readyState === this.ws.OPEN)
            this.armHelloTimer();
        })
        .finally(() => {
          this.inFlight--;
        }),
    );
  }

  private async handle(raw: string): Promise<void> {
    if (this.ws.readyState !== this.ws.OPEN) return;
    const parsed = parseClientFrame(raw);
    if ('error' in parsed) {
      this.gateway.log.debug({ event: 'web.bad_frame', code: parsed.code, err: parsed.error });
      this.error(parsed.code, parsed.error, parsed.id ? { id: parsed.id } : {});
      return;
    }
    const { frame } = parsed;
    switch (frame.type) {
      case 'hello':
        return this.onHello(frame);
      case 'message':
        return this.onMessage(frame);
      case 'ack':
        return this.onAck(frame.seq);
      case 'end':
        return this.onEnd();
      case 'ping':
        this.send({ type: 'pong' });
        return;
      case 'authenticate':
        return this.onAuthenticate(frame.jwt);
    }
  }

  private async onHello(frame: Extract<ClientFrame, { type: 'hello' }>): Promise<void> {
    const { host } = this;
    // The hello is here; opening a session may take a while on a busy database.
    this.clearHelloTimer();
    this.unbind(false);
    let session: SessionRecord | undefined;
    let token: string | undefined;
    this.cookieMode = frame.cookie === true;
    const held = frame.cookie ? this.info.cookies.get(frame.bot ?? DEFAULT_BOT) : frame.token;
    if (frame.cookie && !held) {
      this.ws.close(CLOSE.BAD_TOKEN, 'there is no session cookie for this bot');
      return;
    }
    if (held) {
      session = await host.sessions.forToken(held);
      if (session?.channel !== 'web' || (frame.bot && frame.bot !== session.bot)) {
        this.ws.close(CLOSE.BAD_TOKEN, 'the session token is not valid, or its session has ended or expired');
        return;
      }
    } else {
      const bot = frame.bot ?? DEFAULT_BOT;
      if (!host.bots.has(bot)) {
        this.ws.close(CLOSE.UNKNOWN_BOT, `there is no bot named "${bot}"`);
        return;
      }
      if (!(await this.mayOpenSession())) return;
      const opened = await host.sessions.open({
        bot,
        channel: 'web',
        meta: { ...this.envelopeMeta(frame), origin: this.info.origin },
      });
      session = opened.session;
      token = opened.token;
      this.openedToken = token;
      this.gateway.log.info({ event: 'session.created', sessionId: session.id, bot, channel: 'web' });
    }
    this.hello = { pageUrl: frame.pageUrl, language: frame.language };
    await this.bind(session, held ?? token!, { lastSeq: frame.lastSeq, newToken: token });
  }

  /**
   * A socket opens one session at a time (another once that one has ended), and a client
   * address SESSION_CREATE_PER_MINUTE a minute; a refused hello is answered with an error
   * frame, and the socket may say hello again.
   */
  private async mayOpenSession(): Promise<boolean> {
    const { host } = this;
    const refuse = (code: 'session_open' | 'rate_limited', message: string, retryAfterMs?: number) => {
      this.gateway.log.info({ event: 'session.create_limited', channel: 'web', reason: code });
      this.error(code, message, retryAfterMs === undefined ? {} : { retryAfterMs });
      this.armHelloTimer();
      return false;
    };
    if (this.openedToken && (await host.sessions.forToken(this.openedToken)))
      return refuse('session_open', 'this socket already opened a session that is still open; end it first');
    const address = this.info.ip ?? 'unknown';
    const limit = host.config.sessionCreatePerMinute;
    const decision = await host.rateLimiter.hit(sessionCreateKey(address), limit, MINUTE_MS);
    if (!decision.allowed)
      return refuse(
        'rate_limited',
        `this address opened ${limit} sessions in the last minute; retry later`,
        decision.retryAfterMs,
      );
    return true;
  }

  /** Joins the session's room, says welcome, and sends what the client has not seen yet. */
  private async bind(
    session: SessionRecord,
    token: string,
    options: { lastSeq: number; newToken?: string | undefined },
  ): Promise<void> {
    const room = this.gateway.room(session.id);
    if (room.size >= MAX_SOCKETS_PER_SESSION) {
      this.gateway.log.info({ event: 'web.session_sockets_limited', sessionId: session.id });
      this.ws.close(
        CLOSE.TOO_MANY_SOCKETS,
        `this session already has ${MAX_SOCKETS_PER_SESSION} sockets here; close another tab`,
      );
      return;
    }
    // Before arriving: a throw between `arrive` and `join` would keep the room (and its
    // subscription) for a socket that never comes.
    const title = this.host.bots.get(session.bot).settings.displayName ?? session.bot;
    try {
      await room.arrive();
    } catch (err) {
      room.abandon();
      this.gateway.log.warn({
        event: 'web.subscribe_failed',
        sessionId: session.id,
        err: (err as Error).message,
      });
      this.ws.close(CLOSE.UNAVAILABLE, 'try again shortly');
      return;
    }
    if (this.ws.readyState !== this.ws.OPEN) {
      // Closed meanwhile: it never joined, and another socket may still be on its way in.
      room.abandon();
      return;
    }
    this.session = session;
    this.token = token;
    this.lastActivityAt = Date.parse(session.lastActivityAt);
    this.room = room;
    this.cursor = Math.max(
      Math.min(options.lastSeq, session.lastSeq),
      session.lastSeq - MAX_REPLAY_MESSAGES,
      0,
    );
    this.send({
      type: 'welcome',
      sessionId: session.id,
      bot: session.bot,
      title,
      ...(options.newToken ? { token: options.newToken } : {}),
      lastSeq: session.lastSeq,
      resumed: !options.newToken,
    });
    room.join(this);
    // A sign-in committed between the token check and the room's subscription was not heard here;
    // nor an end asked for in another tab (its token is revoked at once, its end turn follows).
    const current = await this.host.sessions.forToken(token);
    if (current?.id !== session.id) {
      // A token that opens another session now was renewed (an idle-out's successor): as before.
      if (!current && (await this.host.sessions.tokenRevoked(session.id))) this.unbind(true);
      else this.closeReplaced();
      return;
    }
    // Read after joining: nothing newer than its lastSeq (a client that saw everything, the usual
    // reconnect) means no history to read; whatever commits from now on reaches the room.
    if (current.lastSeq > this.cursor) await room.run(() => room.catchUp([this]));
  }

  private envelopeMeta(frame: HelloMeta | undefined): Record<string, unknown> {
    return {
      ip: this.info.ip,
      userAgent: this.info.userAgent,
      pageUrl: withoutQuery(frame?.pageUrl),
      language: frame?.language ?? this.info.acceptLanguage,
    };
  }

  /**
   * The session a message goes to: this one, unless it has idled out, in which case its
   * successor (same token) takes its place on this socket with a new welcome.
   */
  private async currentSession(session: SessionRecord, text: string): Promise<SessionRecord> {
    const { host } = this;
    const rules = host.bots.rules(session.bot, session.channel);
    if (!this.token || Date.now() - this.lastActivityAt <= rules.idleTimeoutMs) return session;
    // This socket may not have seen every turn (another tab, another gateway): ask the database.
    const stored = await host.sessions.forToken(this.token);
    if (!stored) return session;
    const next = await host.sessions.forMessage(stored, this.token, text);
    if (next.id === session.id) {
      this.lastActivityAt = Date.parse(next.lastActivityAt);
      return session;
    }
    this.unbind(false);
    await this.bind(next, this.token, { lastSeq: 0 });
    return next;
  }

  private async onMessage(frame: Extract<ClientFrame, { type: 'message' }>): Promise<void> {
    const { host } = this;
    const { id } = frame;
    if (!this.session) return this.error('not_ready', 'send hello first', { id });
    const bytes = Buffer.byteLength(frame.text, 'utf8');
    if (bytes > host.config.maxTextBytes)
      return this.error('text_too_long', `text is ${bytes} bytes; the limit is ${host.config.maxTextBytes}`, {
        id,
      });
    if (frame.text.trim() === '' && !frame.files?.length)
      return this.error('empty_text', 'text must not be empty', { id });
    const owner = this.session.id;
    const session = await this.currentSession(this.session, frame.text);
    this.lastActivityAt = Date.now();
    try {
      const attachments = await uploadedAttachments(host.files, frame.files, owner, session.id);
      const accepted = await host.ingress.accept({
        id: `web:${session.id}:${id}`,
        channel: 'web',
        bot: session.bot,
        from: { id: session.id },
        text: frame.text,
        attachments,
        meta: this.envelopeMeta(this.hello),
        receivedAt: new Date().toISOString(),
      });
      this.send({ type: 'ack', id, status: accepted.status });
    } catch (err) {
      if (err instanceof InvalidEnvelopeError) return this.error('bad_frame', err.message, { id });
      if (err instanceof UnknownFileError) return this.error('unknown_file', err.message, { id });
      if (err instanceof RateLimitedError)
        return this.error('rate_limited', err.message, { id, retryAfterMs: err.retryAfterMs });
      throw err;
    }
  }

  /** Signs the session in; the socket stays bound to it and now holds its new token. */
  private async onAuthenticate(jwt: string): Promise<void> {
    const { session, token } = this;
    if (!session || !token) return this.error('not_ready', 'send hello first');
    const signIn = this.host.signIn;
    if (!signIn) return this.error('sign_in_disabled', 'sign-in is not configured on this hub');
    if (this.cookieMode)
      // Its answer is a token, which a page bound by cookie must not see (and there is no host site).
      return this.error(
        'not_upgradable',
        "a session held in the hub page's cookie cannot sign in over the socket",
      );
    const limit = this.host.config.sessionCreatePerMinute;
    const attempt = await this.host.rateLimiter.hit(
      signInAttemptKey(this.info.ip ?? 'unknown'),
      limit,
      MINUTE_MS,
    );
    if (!attempt.allowed)
      return this.error(
        'rate_limited',
        `this address tried ${limit} sign-ins in the last minute; retry later`,
        {
          retryAfterMs: attempt.retryAfterMs,
        },
      );
    const signingIn: { replacedBy?: string } = {};
    this.signingIn = signingIn;
    try {
      const result = await signIn(token, jwt);
      if (this.openedToken === token) this.openedToken = result.token;
      this.token = result.token;
      this.send({
        type: 'authenticated',
        sessionId: result.sessionId,
        token: result.token,
        authLevel: result.authLevel,
        userId: result.userId,
      });
    } catch (err) {
      if (err instanceof SignInRefused) return this.error(err.code, err.message);
      throw err;
    } finally {
      this.signingIn = undefined;
      // What was heard meanwhile is judged against the token this socket holds now.
      if (signingIn.replacedBy) this.tokenReplaced(signingIn.replacedBy);
    }
  }

  private async onAck(seq: number): Promise<void> {
    if (!this.session) return;
    // Only what this socket was actually sent can be acknowledged by it.
    const through = Math.min(seq, this.cursor);
    if (through > 0) await this.host.deliveredThrough(this.session.id, through);
  }

  private async onEnd(): Promise<void> {
    const { session } = this;
    if (!session) return this.error('not_ready', 'there is no session to end');
    await this.host.sessions.end(session, 'ended by user');
    this.gateway.log.info({ event: 'session.end_requested', sessionId: session.id, channel: 'web' });
    this.unbind(true);
  }

  /** Leaves the current session (telling the client when it ended); a new `hello` may follow. */
  unbind(ended: boolean): void {
    const { session, room } = this;
    if (!session) return;
    this.session = undefined;
    this.room = undefined;
    this.cursor = 0;
    room?.leave(this);
    if (ended) {
      this.send({ type: 'ended', sessionId: session.id });
      this.armHelloTimer();
    }
  }

  onClose(): void {
    this.clearHelloTimer();
    this.gateway.forget(this);
    this.room?.leave(this);
    this.session = undefined;
    this.room = undefined;
  }
}
