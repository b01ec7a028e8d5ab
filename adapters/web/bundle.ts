import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { distPath, sourceDir } from '../../src/package-root.ts';

export const WIDGET_ENTRY = path.join(sourceDir(import.meta.url), 'widget', 'main.ts');
/** Browsers the widget supports: every evergreen browser of the last few years. */
const TARGETS = ['chrome100', 'firefox100', 'safari15', 'edge100'];

export interface WidgetBundle {
  js: Buffer;
  gzip: Buffer;
  /** A strong ETag: the content's hash. */
  etag: string;
}

/** Where the build (`scripts/build.js`) writes the bundled widget. */
export const WIDGET_DIST = distPath('widget', 'widget.js');

/**
 * Bundles the widget (TypeScript, no framework) into one minified script: the build does it
 * once (`bundleWidget` into `WIDGET_DIST`), and the gateway only reads the file.
 */
export async function bundleWidget(): Promise<Buffer> {
  // A build tool: imported here only, never by a gateway that has the built file.
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [WIDGET_ENTRY],
    bundle: true,
    minify: true,
    format: 'iife',
    target: TARGETS,
    write: false,
    legalComments: 'none',
    logLevel: 'silent',
  });
  return Buffer.from(result.outputFiles[0]!.contents);
}

/**
 * The widget the gateway serves: the build's file, compressed and hashed once at start. Without a
 * build (the sources run directly, esbuild installed) it is bundled in memory instead.
 */
export async function buildWidget(): Promise<WidgetBundle> {
  const js = existsSync(WIDGET_DIST) ? await fs.readFile(WIDGET_DIST) : await bundleWidget();
  return {
    js,
    gzip: gzipSync(js, { level: 9 }),
    etag: `"${createHash('sha256').update(js).digest('base64url').slice(0, 27)}"`,
  };
}
