import { afterEach, describe, expect, it } from 'vitest';
import { DialogHarness } from '../helpers/dialog.ts';

const harnesses: DialogHarness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.cleanup();
});

describe('ASK RATING', () => {
  it('offers 1 to 5 stars, waits for one, and records it as the session event "rating"', async () => {
    const h = await DialogHarness.create({
      'start.bas': 'TALK "Hi"',
      'message.bas': 'ASK RATING\nTALK "Thanks for the " + rating',
    });
    harnesses.push(h);
    await h.start();
    const asked = await h.say('bye');
    expect(asked.texts).toEqual(['How would you rate this conversation? 1 star is poor, 5 stars excellent.']);
    expect(asked.replies[0]!.suggestions).toEqual([
      { text: '★', value: '1' },
      { text: '★★', value: '2' },
      { text: '★★★', value: '3' },
      { text: '★★★★', value: '4' },
      { text: '★★★★★', value: '5' },
    ]);
    // Not a star: asked again.
    const again = await h.say('great');
    expect(again.events.filter((e) => e.type === 'rating')).toEqual([]);
    const rated = await h.say('4');
    expect(rated.texts).toEqual(['Thanks for the 4']);
    expect(rated.events.filter((e) => e.type === 'rating')).toEqual([{ type: 'rating', data: { value: 4 } }]);
  });

  it('leaves a variable named ask alone', async () => {
    const h = await DialogHarness.create({ 'start.bas': 'ask = 2\nTALK ask + 1' });
    harnesses.push(h);
    expect((await h.start()).texts).toEqual(['3']);
  });
});
