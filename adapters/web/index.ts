import type { Context, Hono } from 'hono';
import { ApiError, errorResponse } from '../../src/http/errors.ts';
import type { AdapterHost, ChannelAdapter } from '../../src/ports.ts';
import { buildWidget, type WidgetBundle } from './bundle.ts';
import type { WebConfig } from './config.ts';
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

  return {
    channel: 'web',
    async setup(h) {
      host = h;
      gateway = new WebGateway(h, config);
    },
    routes(app: Hono) {
      bundle = buildWidget();
      // Surfaces a broken widget build at start (awaited there) rather than at the first visitor.
      bundle.catch(() => undefined);
      app.get('/widget.js', serveWidget);
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
