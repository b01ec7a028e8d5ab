import { afterEach, describe, expect, it } from 'vitest';
import { DialogHarness } from '../helpers/dialog.ts';

const APOLOGY = 'Sorry, something went wrong on my side. Please try again.';
const harnesses: DialogHarness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.cleanup();
});

/**
 * The longest text `Array.prototype.join` made while `run` ran: REPLACE and JOIN build their
 * results with it, so this is the largest such text the interpreter held.
 */
async function longestJoinWhile(run: () => Promise<unknown>): Promise<number> {
  const join = Array.prototype.join;
  let longest = 0;
  Array.prototype.join = function (this: unknown[], separator?: string) {
    const joined = join.call(this, separator);
    longest = Math.max(longest, joined.length);
    return joined;
  };
  try {
    await run();
  } finally {
    Array.prototype.join = join;
  }
  return longest;
}

/**
 * REPLACE and JOIN multiply a text (each separator by each piece): with the person's words on
 * both sides, 8,000 characters make 64 million. The limit of one text (maxVariableBytes) holds
 * before such a text is made, not after.
 */
describe('texts that REPLACE and JOIN would make too long are refused before they are made', () => {
  const words = 'ab'.repeat(4_000);

  it.each([
    ['REPLACE with an empty search', 'TALK LEN(REPLACE(message, "", message))'],
    ['REPLACE of a frequent piece', 'TALK LEN(REPLACE(message, "a", message))'],
    ['JOIN', 'TALK LEN(JOIN(SPLIT(message, ""), message))'],
  ])('%s', async (_what, source) => {
    const h = await DialogHarness.create({ 'start.bas': 'TALK "hi"', 'message.bas': source });
    harnesses.push(h);
    await h.start();
    let texts: string[] = [];
    const longest = await longestJoinWhile(async () => {
      texts = (await h.say(words)).texts;
    });
    expect(texts).toEqual([APOLOGY]);
    expect(h.logs.find((l) => l.event === 'dialog.runtime_error')).toMatchObject({
      err: 'a text grew beyond the limit of 1048576 bytes',
    });
    expect(longest).toBeLessThanOrEqual(1_048_576);
  });

  it('within the limit, they work as before', async () => {
    const h = await DialogHarness.create({
      'start.bas': 'TALK "hi"',
      'message.bas':
        'TALK REPLACE(message, "b", "-")\nTALK REPLACE("xyz", "", ".")\nTALK JOIN(SPLIT(message, "b"), "+")',
    });
    harnesses.push(h);
    await h.start();
    expect((await h.say('abcabc')).texts).toEqual(['a-ca-c', 'x.y.z', 'a+ca+c']);
  });
});
