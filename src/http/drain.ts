import type { Server, ServerResponse } from 'node:http';

export interface RequestDrain {
  /** Requests whose response has not ended yet. */
  inFlight(): number;
  /**
   * From now on, every response (those in flight, and any to a request still arriving on an
   * open connection) closes its connection once sent, and connections with nothing in flight
   * are closed: the server's close completes when the last request in flight was answered.
   */
  drain(): void;
}

/**
 * Tracks the server's requests so that a stop answers them rather than resetting them. Node's
 * `server.close()` takes no new connection, but a keep-alive connection whose response was in
 * flight stays open afterwards and carries the client's next request (answered as usual) until
 * it is idle for `keepAliveTimeout`: here it is told `Connection: close` instead.
 */
export function trackRequests(server: Server): RequestDrain {
  const responses = new Set<ServerResponse>();
  let draining = false;
  const closeIfIdle = () => {
    // A response whose headers went out before the drain said keep-alive: its connection is
    // idle now, and closed (the next request, if any, goes to another process).
    if (draining) setImmediate(() => server.closeIdleConnections());
  };
  // First among the listeners: the header is set before the application writes its response.
  server.prependListener('request', (_req, res: ServerResponse) => {
    if (draining) res.setHeader('Connection', 'close');
    responses.add(res);
    res.once('close', () => {
      responses.delete(res);
      closeIfIdle();
    });
  });
  return {
    inFlight: () => responses.size,
    drain() {
      draining = true;
      for (const res of responses) if (!res.headersSent) res.setHeader('Connection', 'close');
      server.closeIdleConnections();
    },
  };
}
