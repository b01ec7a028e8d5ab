import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { lazyChild } from '../../src/logger.ts';

describe('lazyChild', () => {
  const capture = () => {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk, _encoding, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    });
    return { lines, logger: pino({ level: 'info' }, stream) };
  };

  it('makes no child logger while nothing logs', () => {
    const { logger } = capture();
    const child = vi.spyOn(logger, 'child');
    lazyChild(logger, { sessionId: 's-1' });
    expect(child).not.toHaveBeenCalled();
  });

  it('logs with its bindings once used, and makes the child once', () => {
    const { lines, logger } = capture();
    const child = vi.spyOn(logger, 'child');
    const turn = lazyChild(logger, { sessionId: 's-1', bot: 'default' });
    turn.info({ event: 'turn.no_reply' });
    turn.warn({ event: 'turn.rate_limited' });
    turn.debug({ event: 'below the level' });
    expect(turn.isLevelEnabled('debug')).toBe(false);
    expect(child).toHaveBeenCalledTimes(1);
    expect(lines.map((l) => [l.event, l.sessionId, l.bot])).toEqual([
      ['turn.no_reply', 's-1', 'default'],
      ['turn.rate_limited', 's-1', 'default'],
    ]);
  });
});
