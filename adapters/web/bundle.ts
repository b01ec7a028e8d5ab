import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

export const WIDGET_ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), 'widget', 'main.ts');
/** Browsers the widget supports: every evergreen browser of the last few years. */
const TARGETS = ['chrome100', 'firefox100', 'safari15', 'edge100'];

export interface WidgetBundle {
  js: Buffer;
  gzip: Buffer;
  /** A strong ETag: the content's hash. */
  etag: string;
}

/**
 * Bundles the widget (TypeScript, no framework) into one minified script, in memory, when the
 * gateway starts: nothing built is committed, so the served widget is always the source's.
 */
export async function buildWidget(): Promise<WidgetBundle> {
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
  const js = Buffer.from(result.outputFiles[0]!.contents);
  return {
    js,
    gzip: gzipSync(js, { level: 9 }),
    etag: `"${createHash('sha256').update(js).digest('base64url').slice(0, 27)}"`,
  };
}
