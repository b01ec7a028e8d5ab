import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ScriptLibrary } from '../../src/dialog/library.ts';
import { tempDir } from '../helpers/database.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

async function openLibrary(scripts: Record<string, string>, checkEveryMs?: number) {
  const dir = await tempDir('sbt-library-');
  dirs.push(dir);
  for (const [name, source] of Object.entries(scripts)) await fs.writeFile(path.join(dir, name), source);
  const { library, errors } = await ScriptLibrary.open(dir, { checkEveryMs });
  expect(errors).toEqual([]);
  return { dir, library };
}

/** The names the library keeps a check time for: what a long-running worker holds per bot. */
function tracked(library: ScriptLibrary): string[] {
  return [...(library as unknown as { checkedAt: Map<string, number> }).checkedAt.keys()];
}

describe('ScriptLibrary', () => {
  it('keeps nothing for names with no script (RUN on what a person typed)', async () => {
    // Checked at most once an hour: the last check of menu.bas stands however slow the 500 lookups.
    const { library } = await openLibrary({ 'menu.bas': 'TALK "menu"' }, 3_600_000);
    expect((await library.get('menu.bas'))?.name).toBe('menu.bas');
    for (let i = 0; i < 500; i++) expect(await library.get(`choice${i}.bas`)).toBeUndefined();
    expect(tracked(library)).toEqual(['menu.bas']);
    // The script in use is still served from the last check, without a stat.
    expect(library.recent('menu.bas')?.name).toBe('menu.bas');
  });

  it('forgets a script whose file went, and finds it again when it comes back', async () => {
    const { dir, library } = await openLibrary({ 'menu.bas': 'TALK "menu"' }, 0);
    expect((await library.get('menu.bas'))?.name).toBe('menu.bas');
    await fs.rm(path.join(dir, 'menu.bas'));
    expect(await library.get('menu.bas')).toBeUndefined();
    expect(tracked(library)).toEqual([]);
    await fs.writeFile(path.join(dir, 'menu.bas'), 'TALK "back"');
    expect((await library.get('menu.bas'))?.name).toBe('menu.bas');
    expect(tracked(library)).toEqual(['menu.bas']);
  });
});
