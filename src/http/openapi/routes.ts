import fs from 'node:fs/promises';
import path from 'node:path';
import { Hono } from 'hono';
import { distPath, PACKAGE_ROOT } from '../../package-root.ts';
import { ApiError, errorResponse } from '../errors.ts';

/**
 * The API reference's script (Scalar's standalone build), served from the hub itself: no CDN. The
 * build copies it into dist/ (scripts/build.js, step 7): its package is a dev dependency.
 */
const SCALAR_BUNDLE = distPath('docs', 'scalar.js');
/** The package's version, from its package.json. */
async function packageVersion(): Promise<string> {
  const raw = await fs.readFile(path.join(PACKAGE_ROOT, 'package.json'), 'utf8');
  return (JSON.parse(raw) as { version?: string }).version ?? '0.0.0';
}

/**
 * The reference page's headers: its own script and the document only, nothing from anywhere
 * else (Scalar inlines its styles and builds its page in the browser, hence `unsafe-inline`/`eval`
 * for styles and its script, and `data:` for fonts and images).
 */
const DOCS_CSP =
  "default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Scalar's configuration: the local document, no default fonts (a CDN), no agent, no telemetry, no proxy. */
const SCALAR_CONFIG = {
  url: '/openapi.json',
  withDefaultFonts: false,
  hideClientButton: false,
  telemetry: false,
  agent: { disabled: true },
  mcp: { disabled: true },
  showDeveloperTools: 'never',
  hideDarkModeToggle: false,
  defaultOpenAllTags: false,
  metaData: { title: 'Switchboard API reference' },
};

const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchboard API reference</title>
<link rel="icon" href="data:,">
</head>
<body>
<noscript>The API reference needs JavaScript; the document itself is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<div id="app"></div>
<script src="/docs/assets/scalar.js"></script>
<script src="/docs/assets/start.js"></script>
</body>
</html>
`;

const START_SCRIPT = `Scalar.createApiReference('#app', ${JSON.stringify(SCALAR_CONFIG)});\n`;

/**
 * `GET /openapi.json` (the OpenAPI 3.1 document, built on first use from the routes' zod schemas)
 * and `GET /docs` (an API reference page for it, working offline).
 */
export function openApiRoutes(options: { scalarBundle?: string } = {}): Hono {
  const app = new Hono();
  const scalarBundle = options.scalarBundle ?? SCALAR_BUNDLE;
  let document: Promise<string> | undefined;
  let bundle: Promise<string | undefined> | undefined;

  app.get('/openapi.json', async (c) => {
    document ??= Promise.all([import('./document.ts'), packageVersion()]).then(
      ([{ buildOpenApiDocument }, version]) => JSON.stringify(buildOpenApiDocument({ version })),
    );
    c.header('Content-Type', 'application/json; charset=utf-8');
    c.header('Cache-Control', 'no-cache');
    return c.body(await document);
  });

  const secure = (c: { header(name: string, value: string): void }) => {
    c.header('Content-Security-Policy', DOCS_CSP);
    c.header('X-Frame-Options', 'DENY');
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Referrer-Policy', 'no-referrer');
  };
  app.get('/docs', (c) => {
    secure(c);
    return c.html(DOCS_PAGE);
  });
  app.get('/docs/assets/start.js', (c) => {
    secure(c);
    c.header('Content-Type', 'text/javascript; charset=utf-8');
    return c.body(START_SCRIPT);
  });
  app.get('/docs/assets/scalar.js', async (c) => {
    bundle ??= fs.readFile(scalarBundle, 'utf8').catch(() => undefined);
    const script = await bundle;
    if (script === undefined) {
      // Looked for again next time: a build may bring it meanwhile.
      bundle = undefined;
      return errorResponse(
        c,
        new ApiError(
          404,
          'not_built',
          `the API reference's script is not built (${scalarBundle}): build with the dev dependencies installed (npm ci && npm run build)`,
        ),
      );
    }
    secure(c);
    c.header('Content-Type', 'text/javascript; charset=utf-8');
    c.header('Cache-Control', 'public, max-age=3600');
    return c.body(script);
  });
  return app;
}
