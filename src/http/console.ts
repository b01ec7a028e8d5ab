import fs from 'node:fs/promises';
import path from 'node:path';
import { type Context, Hono } from 'hono';
import { distPath } from '../package-root.ts';
import { ApiError, errorResponse } from './errors.ts';

/** Where the build (`scripts/build.js`) writes the bundled console. */
export const CONSOLE_DIST = distPath('console');

/**
 * The console's headers: its own scripts, styles and API only; never framed (it holds an agent's
 * session, so a framing page could trick clicks); no referrer leaks a conversation id.
 */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; media-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** A Map, not an object: a name from the URL must not find Object.prototype's members (`toString`). */
const ASSETS = new Map<string, string>([
  ['app.js', 'text/javascript; charset=utf-8'],
  ['app.js.map', 'application/json; charset=utf-8'],
  ['styles.css', 'text/css; charset=utf-8'],
  ['styles.css.map', 'application/json; charset=utf-8'],
]);

function shell(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/assets/styles.css">
<script type="module" src="/console/assets/app.js"></script>
</head>
<body>
<noscript>The console needs JavaScript.</noscript>
<div id="console"></div>
</body>
</html>
`;
}

function secure(c: Context): void {
  c.header('Content-Security-Policy', CONSOLE_CSP);
  c.header('X-Frame-Options', 'DENY');
  c.header('X-Content-Type-Options', 'nosniff');
  c.header('Referrer-Policy', 'no-referrer');
}

/**
 * The agent console at `/console` (and every path below it, so a reload of a deep link works),
 * with its bundle under `/console/assets/`. The bundle is read once: it is built before the hub
 * starts (`npm ci`, `npm start`, `npm test` all build it).
 */
export function consoleRoutes(options: { distDir?: string } = {}): Hono {
  const app = new Hono();
  const dist = options.distDir ?? CONSOLE_DIST;
  const cache = new Map<string, Promise<Buffer>>();
  const read = (name: string) => {
    let file = cache.get(name);
    if (!file) {
      file = fs.readFile(path.join(dist, name));
      file.catch(() => cache.delete(name));
      cache.set(name, file);
    }
    return file;
  };

  app.get('/console/assets/:name', async (c) => {
    const name = c.req.param('name');
    const type = ASSETS.get(name);
    if (!type) return errorResponse(c, new ApiError(404, 'not_found', `no console asset ${name}`));
    const body = await read(name).catch(() => undefined);
    if (!body)
      return errorResponse(
        c,
        new ApiError(503, 'console_not_built', 'the console is not built: run `npm run build`'),
      );
    secure(c);
    c.header('Content-Type', type);
    c.header('Cache-Control', 'no-cache');
    return c.body(new Uint8Array(body));
  });
  const page = (c: Context) => {
    secure(c);
    c.header('Cache-Control', 'no-store');
    return c.html(shell('Switchboard console'));
  };
  app.get('/console', page);
  app.get('/console/*', page);
  return app;
}
