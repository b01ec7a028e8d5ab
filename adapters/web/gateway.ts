import type { IncomingMessage, Server } from 'node:http';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import { Gauge } from 'prom-client';
import type { WebSocketServer } from 'ws';
import { requestAddress } from '../../src/http/client-address.ts';
import {
  MINUTE_MS,
  type RateDecision,
  retryAfterSeconds,
  webConnectionKey,
} from '../../src/limits/rate-limiter.ts';
import type { AdapterHost } from '../../src/ports.ts';
import type { WebConfig } from './config.ts';
import { type ClientInfo, Connection } from './connection.ts';
import { fromOwnPage, sessionCookies } from './cookie.ts';
import { originAllowed } from './origin.ts';
import { CLOSE } from './protocol.ts';
import { Room } from './room.ts';

export const WS_PATH = '/ws';
/** The cookies of a handshake from another site's page: none, the same empty map for all. */
const NO_COOKIES: ReadonlyMap<string, string> = new Map();
/** How long sockets get to close when the server stops, before they are cut. */
const CLOSE_GRACE_MS = 2_000;

/**
 * `ws`, loaded at the first handshake rather than at start: ~80 ms of module loading a hub
 * nobody has opened a widget on does not need before `/readyz` (README, "Performance"). It is
 * CommonJS, so `require` has it at once, inside the synchronous upgrade handler.
 */
let wsModule: typeof import('ws') | undefined;
const loadWs = () => (wsModule ??= createRequire(import.meta.url)('ws') as typeof import('ws'));

/**
 * The widget's WebSocket endpoint: one gateway process's sockets, grouped by session. Each
 * session connected here has one bus subscription (its "room"), so a turn committed by any
 * worker reaches every tab of it, wherever the socket is.
 */
export class WebGateway {
  /** Made at the first handshake (see loadWs). */
  private wssMade: WebSocketServer | undefined;
  private readonly connections = new Set<Connection>();
  readonly rooms = new Map<string, Room>();
  private heartbeat: NodeJS.Timeout | undefined;
  private server: Server | undefined;
  private closing = false;
  /** Stops the catch-up after a lost pub/sub subscription (see `attach`). */
  private offResubscribed: (() => void) | undefined;
  readonly gauge: Gauge;

  constructor(
    readonly host: AdapterHost,
    readonly config: WebConfig,
  ) {
    this.gauge = new Gauge({
      name: 'switchboard_web_connections',
      help: 'Open widget WebSockets on this gateway',
      registers: [host.metrics.registry],
      collect: () => this.gauge.set(this.connections.size),
    });
  }

  private get wss(): WebSocketServer {
    this.wssMade ??= new (loadWs().WebSocketServer)({
      noServer: true,
      maxPayload: this.config.maxFrameBytes,
      // Compression would cost each socket its own zlib state: hundreds of KB at rest.
      perMessageDeflate: false,
      clientTracking: false,
    });
    return this.wssMade;
  }

  get log() {
    return this.host.logger;
  }

  attach(server: Server): void {
    this.server = server;
    server.on('upgrade', this.onUpgrade);
    this.heartbeat = setInterval(() => this.beat(), this.config.heartbeatMs);
    this.heartbeat.unref();
    // The turns committed while this gateway's subscription was away were announced to nobody
    // here: every session's sockets catch up from the history, else they would wait for the
    // session's next turn (or a reconnect) to see those replies.
    this.offResubscribed = this.host.bus.onResubscribed(() => {
      for (const room of this.rooms.values()) room.resync();
    });
  }

  async detach(): Promise<void> {
    this.closing = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.offResubscribed?.();
    if (this.connections.size === 0) return;
    const all = [...this.connections];
    const closed = Promise.all(all.map((c) => c.closed()));
    for (const c of all) c.ws.close(CLOSE.GOING_AWAY, 'server restarting');
    const timer = setTimeout(() => {
      for (const c of all) c.ws.terminate();
    }, CLOSE_GRACE_MS);
    await closed;
    clearTimeout(timer);
  }

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== WS_PATH) {
      // Another listener may own this path; when there is none, answer instead of hanging.
      if (this.server?.listenerCount('upgrade') === 1) reject(socket, 404);
      return;
    }
    // Node's HTTP server stops listening for the socket's errors before 'upgrade': until ws takes
    // it over, an error nobody hears (a client's reset) would end the process.
    socket.on('error', destroyOnError);
    if (this.closing) return reject(socket, 503);
    const origin = req.headers.origin;
    if (!originAllowed(origin, req.headers.host, this.config.allowedOrigins)) {
      this.log.warn({ event: 'web.origin_rejected', origin });
      return reject(socket, 403);
    }
    // Read before the upgrade, so that nothing made for the socket keeps the request (its
    // headers, its raw header strings) for the socket's lifetime.
    const info: ClientInfo = {
      ip: requestAddress(req, this.host.config.trustProxy),
      cookies: fromOwnPage(origin, req.headers.host) ? sessionCookies(req.headers.cookie) : NO_COOKIES,
      userAgent: req.headers['user-agent'],
      origin,
      acceptLanguage: req.headers['accept-language']?.split(',')[0]?.split(';')[0],
    };
    void this.admit(req, socket, head, info);
  };

  /**
   * Upgrades a handshake within its address's WEB_CONNECTIONS_PER_MINUTE (429 past it; 503 when
   * the limiter cannot answer, as a socket could not be served then either).
   */
  private async admit(req: IncomingMessage, socket: Duplex, head: Buffer, info: ClientInfo): Promise<void> {
    const limit = this.host.config.webConnectionsPerMinute;
    let decision: RateDecision | undefined;
    try {
      decision = await this.host.rateLimiter.hit(webConnectionKey(info.ip ?? 'unknown'), limit, MINUTE_MS);
    } catch (err) {
      this.log.warn({ event: 'web.connection_limit_failed', err: (err as Error).message });
    }
    // The client may have gone meanwhile (its error destroyed the socket), or the hub begun to stop.
    if (socket.destroyed) return;
    if (!decision || this.closing) return reject(socket, 503);
    if (!decision.allowed) {
      this.log.info({ event: 'web.connections_limited', limit });
      return reject(socket, 429, { 'Retry-After': retryAfterSeconds(decision.retryAfterMs) });
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      socket.off('error', destroyOnError);
      this.connections.add(new Connection(this, ws, info));
    });
  }

  /** A closed socket's connection leaves the gateway. */
  forget(connection: Connection): void {
    this.connections.delete(connection);
  }

  private beat(): void {
    for (const c of this.connections) c.beat();
  }

  /** The room of a session, created (and subscribed) on first use. */
  room(sessionId: string): Room {
    let room = this.rooms.get(sessionId);
    if (!room) {
      room = new Room(this, sessionId);
      this.rooms.set(sessionId, room);
    }
    return room;
  }
}

function destroyOnError(this: Duplex): void {
  this.destroy();
}

/**
 * Answers an upgrade the hub refuses and lets go of the socket once the answer is out (no HTTP
 * timeout watches it any more, so a client keeping its side open would otherwise hold it), as
 * ws's own refusals do. Its errors are heard until then (see `onUpgrade`).
 */
function reject(socket: Duplex, status: number, headers: Record<string, string> = {}): void {
  const text =
    { 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests', 503: 'Service Unavailable' }[status] ??
    '';
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  if (socket.listenerCount('error') === 0) socket.on('error', destroyOnError);
  socket.once('finish', destroyOnError);
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\n${extra}Content-Length: 0\r\n\r\n`);
}
