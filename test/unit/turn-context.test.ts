import { describe, expect, it } from 'vitest';
import { TurnDraft } from '../../src/engine/turn.ts';
import { parseEnvelope } from '../../src/envelope.ts';
import { silentLogger } from '../helpers/database.ts';
import { freshSnapshot } from '../helpers/session-snapshot.ts';

function draftOf(text: string): TurnDraft {
  const now = new Date().toISOString();
  return new TurnDraft(
    freshSnapshot({ bot: 'b' }),
    parseEnvelope({ id: 'api:ctx', channel: 'api', bot: 'b', from: { id: 'k' }, text, receivedAt: now }),
  );
}

const reads = { botMemory: async () => 'stored', userMemory: async () => null, history: async () => [] };

describe('the bot context (ctx)', () => {
  it('works when a bot destructures it or passes its methods on', async () => {
    const draft = draftOf('hi');
    const ctx = draft.context(silentLogger, reads);
    const { talk, set, get, log, end, memory, text } = ctx;
    const { get: recall, set: remember } = memory;

    set('name', text);
    talk(`hello ${get<string>('name')}`);
    const later = [log, ctx.log];
    for (const [i, note] of later.entries()) note(i === 0 ? 'a' : 'b');
    remember('seen', true);
    expect(await recall('seen')).toBe(true);
    expect(await recall('other')).toBe('stored');
    end('done');

    expect(draft.state.variables).toEqual({ name: 'hi' });
    expect(draft.replies.map((r) => r.text)).toEqual(['hello hi']);
    expect(draft.events.map((e) => e.type)).toEqual(['a', 'b']);
    expect([...draft.memoryWrites]).toEqual([['seen', true]]);
    expect(draft.endReason).toBe('done');
  });
});
