import { type Context, Hono } from 'hono';
import { contextAddress, contextOverTls } from '../../src/http/client-address.ts';
import { ApiError, errorResponse, readJson } from '../../src/http/errors.ts';
import { MINUTE_MS, retryAfterSeconds, sessionCreateKey } from '../../src/limits/rate-limiter.ts';
import type { AdapterHost, ChannelAdapter } from '../../src/ports.ts';
import { buildWidget, type WidgetBundle } from './bundle.ts';
import type { WebConfig } from './config.ts';
import { fromOwnPage, sessionCookie, sessionCookies } from './cookie.ts';
import { COOKIE_SESSION_PATH, CookieSessionBody } from './cookie-session.ts';
import { WebGateway, WS_PATH } from './gateway.ts';
import { chatPage, pageHeaders } from './page.ts';

/** Browsers may keep the widget this long before asking again (then a 304 by ETag). */
const WIDGET_MAX_AGE_SECONDS = 300;
const DEFAULT_BOT = 'default';

/**
 * The web channel: the chat page (`/`, `/<bot>`), the embeddable `widget.js`, and the widget's
 * WebSocket at `/ws`. Replies are read by the widget itself (no sender): the engine commits
 * them as `sent`, and the socket's acknowledgement makes them `delivered`.
 */
export function createWebAdapter(config: WebConfig): ChannelAdapter {
  let host: AdapterHost | undefined;
  let gateway: WebGateway | undefined;
  let bundle: Promise<WidgetBundle> | undefined;
  const need = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the web adapter is used before setup');
    return value;
  };

  const serveWidget = async (c: Context) => {
    const widget = await need(bundle);
    c.header('Content-Type', 'text/javascript; charset=utf-8');
    c.header('Cache-Control', `public, max-age=${WIDGET_MAX_AGE_SECONDS}`);
    c.header('ETag', widget.etag);
    c.header('Vary', 'Accept-Encoding');
    // Any site may embed it.
    c.header('Access-Control-Allow-Origin', '*');
    c.header('Cross-Origin-Resource-Policy', 'cross-origin');
    c.header('X-Content-Type-Options', 'nosniff');
    if (c.req.header('if-none-match') === widget.etag) return c.body(null, 304);
    if (/\bgzip\b/.test(c.req.header('accept-encoding') ?? '')) {
      c.header('Content-Encoding', 'gzip');
      return c.body(new Uint8Array(widget.gzip));
    }
    return c.body(new Uint8Array(widget.js));
  };

  const servePage = (c: Context, bot: string) => {
    const bots = need(host).bots;
    for (const [name, value] of Object.entries(pageHeaders(config.frameAncestors))) c.header(name, value);
    return c.html(chatPage(bot, bots.get(bot).settings.displayName ?? bot));
  };

  /**
   * Opens a web session for the hub's own page and hands its token over only as an HttpOnly
   * cookie (never in the body): the page's socket then binds with `hello {cookie: true}`.
   * Only the hub's own pages may call it (Origin), at SESSION_CREATE_PER_MINUTE per address.
   * The session the request's cookie holds, if any, ends: this is the page's "New conversation".
   */
  const openCookieSession = async (c: Context) => {
    const h = need(host);
    if (!fromOwnPage(c.req.header('origin'), c.req.header('host')))
      throw new ApiError(403, 'forbidden', "only the hub's own chat page opens a session this way");
    const body = await readJson(c, CookieSessionBody, { allowEmpty: true });
    const bot = body.bot ?? DEFAULT_BOT;
    if (!h.bots.has(bot)) throw new ApiError(404, 'unknown_bot', `there is no bot named "${bot}"`);
    const { trustProxy, sessionCreatePerMinute: limit } = h.config;
    const address = contextAddress(c, trustProxy) ?? 'unknown';
    const decision = await h.rateLimiter.hit(sessionCreateKey(address), limit, MINUTE_MS);
    if (!decision.allowed)
      throw new ApiError(
        429,
        'rate_limited',
        `this address opened ${limit} sessions in the last minute; retry later`,
        {
          'Retry-After': retryAfterSeconds(decision.retryAfterMs),
        },
      );
    const previous = sessionCookies(c.req.header('cookie')).get(bot);
    const old = previous ? await h.sessions.forToken(previous) : undefined;
    if (old?.channel === 'web' && old.bot === bot) {
      await h.sessions.end(old, 'ended by user');
      h.logger.info({ event: 'session.end_requested', sessionId: old.id, channel: 'web' });
    }
    const { session, token } = await h.sessions.open({
      bot,
      channel: 'web',
      meta: { ip: address, userAgent: c.req.header('user-agent'), origin: c.req.header('origin') },
    });
    h.logger.info({ event: 'session.created', sessionId: session.id, bot, channel: 'web', cookie: true });
    c.header('Set-Cookie', sessionCookie(bot, token, contextOverTls(c, trustProxy)));
    c.header('Cache-Control', 'no-store');
    return c.json({ session_id: session.id, bot }, 201);
  };

  return {
    channel: 'web',
    async setup(h) {
      host = h;
      gateway = new WebGateway(h, config);
    },
    routes() {
      const app = new Hono();
      bundle = buildWidget();
      // Surfaces a broken widget build at start (awaited there) rather than at the first visitor.
      bundle.catch(() => undefined);
      app.get('/widget.js', serveWidget);
      app.post(COOKIE_SESSION_PATH, openCookieSession);
      app.get(WS_PATH, (c) =>
        errorResponse(
          c,
          new ApiError(426, 'upgrade_required', 'GET /ws is a WebSocket: send Upgrade: websocket', {
            Upgrade: 'websocket',
          }),
        ),
      );
      app.get('/', (c) => servePage(c, DEFAULT_BOT));
      app.get('/:bot', async (c, next) => {
        const bot = c.req.param('bot');
        if (!need(host).bots.has(bot)) return next();
        return servePage(c, bot);
      });
      return app;
    },
    requestToken(c) {
      // Only the hub's own page holds its session in a cookie, one per bot (`?bot=`).
      if (!fromOwnPage(c.req.header('origin'), c.req.header('host'))) return undefined;
      return sessionCookies(c.req.header('cookie')).get(c.req.query('bot') ?? DEFAULT_BOT);
    },
    attach(server) {
      need(gateway).attach(server);
    },
    async start() {
      if (bundle) await bundle;
    },
    detach: () => need(gateway).detach(),
  };
}

export { loadWebConfig, type WebConfig } from './config.ts';
export { COOKIE_SESSION_PATH } from './cookie-session.ts';
