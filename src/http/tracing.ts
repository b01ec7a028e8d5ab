import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { headersContext, SpanKind, SpanStatusCode, startSpan, withSpan } from '../telemetry/tracing.ts';

/**
 * A server span for each request, continuing the caller's W3C `traceparent`; what the request
 * does (an accept, a turn it waits for) runs inside it. Mounted only when tracing is on.
 */
export function httpSpans(): MiddlewareHandler {
  return async (c, next) => {
    const parent = headersContext((name) => c.req.header(name));
    const span = parent
      ? startSpan(c.req.method, {
          kind: SpanKind.SERVER,
          parent,
          attributes: { 'http.request.method': c.req.method, 'url.path': c.req.path },
        })
      : undefined;
    if (!parent || !span) return next();
    try {
      await withSpan(parent, span, next);
    } finally {
      const route = routePath(c, -1);
      if (route && route !== '/*') {
        span.setAttribute('http.route', route);
        span.updateName(`${c.req.method} ${route}`);
      }
      span.setAttribute('http.response.status_code', c.res.status);
      if (c.res.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    }
  };
}
