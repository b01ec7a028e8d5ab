import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The directory holding Switchboard's package.json, found by walking up from this module: the
 * same from the sources (`src/`) and from the build (`dist/src/`), so that whatever the build
 * makes (`dist/console`, `dist/widget`, the embedded database's template) is found from either.
 */
function findPackageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      const { name } = JSON.parse(readFileSync(file, 'utf8')) as { name?: string };
      if (name === 'switchboard') return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('switchboard: package.json not found above this module');
    dir = parent;
  }
}

export const PACKAGE_ROOT = findPackageRoot();

/** A path under the build's output, `dist/`. */
export const distPath = (...parts: string[]): string => path.join(PACKAGE_ROOT, 'dist', ...parts);

/** True when this process runs the build's JavaScript (`dist/`), false when it runs the sources. */
export const RUNNING_BUILD = import.meta.url.endsWith('.js');

/**
 * The directory of a module's source (`import.meta.url`), also when it runs from the build: for
 * files the build does not copy (the widget's sources, which it bundles).
 */
export function sourceDir(moduleUrl: string): string {
  const here = path.dirname(fileURLToPath(moduleUrl));
  const inDist = path.relative(distPath(), here);
  return inDist.startsWith('..') || path.isAbsolute(inDist) ? here : path.join(PACKAGE_ROOT, inDist);
}
