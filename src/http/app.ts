import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { methodNotAllowed } from 'hono/method-not-allowed';
import { isTransient } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { tracingEnabled } from '../telemetry/tracing.ts';
import { ApiError, errorResponse, unavailable } from './errors.ts';
import { httpSpans } from './tracing.ts';

/** Answered while the hub stops, as always: `/readyz` then says `stopping`. */
const OPS_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * The HTTP application shell: JSON errors for everything, a body size limit, 405 with `Allow`
 * for a known path with the wrong method. Routes are mounted on it by the hub.
 */
export function createApp(options: {
  logger: Logger;
  maxBodyBytes: number;
  /** Routes that stream their body and apply limits of their own (file uploads). */
  streamingPaths?: readonly string[];
  /**
   * Paths whose bodies may be larger than `maxBodyBytes` (a broadcast's list of 100,000
   * numbers): exact path → their own limit. Every other path keeps `maxBodyBytes`.
   */
  pathLimits?: Readonly<Record<string, number>>;
  /**
   * Aborted once the hub stops: a request that arrives after that (on a connection opened
   * before) is answered 503 and its connection closed; the ops routes still answer.
   */
  stopping?: AbortSignal;
}): Hono {
  const app = new Hono();
  if (tracingEnabled()) app.use(httpSpans());
  const { stopping } = options;
  if (stopping)
    app.use(async (c, next) => {
      if (!stopping.aborted || OPS_PATHS.has(c.req.path)) return next();
      return errorResponse(
        c,
        new ApiError(503, 'stopping', 'this hub process is stopping; retry, another one will answer', {
          Connection: 'close',
          'Retry-After': '1',
        }),
      );
    });
  app.use(
    methodNotAllowed({
      app,
      onMethodNotAllowed: (c, methods) =>
        errorResponse(
          c,
          new ApiError(
            405,
            'method_not_allowed',
            `${c.req.method} is not allowed here; use ${methods.join(', ')}`,
            { Allow: methods.join(', ') },
          ),
        ),
    }),
  );
  const streaming = new Set(options.streamingPaths ?? []);
  const limitOf = (maxSize: number) =>
    bodyLimit({
      maxSize,
      // The rest of the body is never read, so the connection cannot carry another request.
      onError: (c) =>
        errorResponse(
          c,
          new ApiError(413, 'payload_too_large', `the request body is over ${maxSize} bytes`, {
            Connection: 'close',
          }),
        ),
    });
  const limit = limitOf(options.maxBodyBytes);
  const pathLimits = new Map(
    Object.entries(options.pathLimits ?? {}).map(([path, maxSize]) => [path, limitOf(maxSize)]),
  );
  app.use((c, next) => (streaming.has(c.req.path) ? next() : (pathLimits.get(c.req.path) ?? limit)(c, next)));
  app.notFound((c) =>
    errorResponse(c, new ApiError(404, 'not_found', `nothing at ${c.req.method} ${c.req.path}`)),
  );
  app.onError((err, c) => {
    if (err instanceof ApiError) return errorResponse(c, err);
    if (isTransient(err)) {
      options.logger.warn({
        event: 'http.unavailable',
        method: c.req.method,
        path: c.req.path,
        err: err.message,
      });
      return errorResponse(c, unavailable());
    }
    options.logger.error({
      event: 'http.error',
      method: c.req.method,
      path: c.req.path,
      err: err.message,
      stack: err.stack,
    });
    return errorResponse(
      c,
      new ApiError(500, 'internal', 'something went wrong on our side; it has been logged'),
    );
  });
  return app;
}
