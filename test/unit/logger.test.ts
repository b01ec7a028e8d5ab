import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, lazyChild, logDestination } from '../../src/logger.ts';

function capture(): { sink: PassThrough; text: () => string } {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (c: Buffer) => chunks.push(c));
  return { sink, text: () => Buffer.concat(chunks).toString('utf8') };
}

describe('log format', () => {
  it('writes JSON lines when stdout is not a terminal', () => {
    expect(logDestination(false, undefined)).toBeUndefined();
    expect(logDestination(true, 'json')).toBeUndefined();
  });

  it('writes readable lines on a terminal, with the event name and no secrets', () => {
    const out = capture();
    const logger = createLogger('info', {}, logDestination(true, undefined, out.sink));
    logger.info({ event: 'session.created', token: 'secret-token', bot: 'support' }, 'a session');
    const line = out.text();
    expect(line.startsWith('{')).toBe(false);
    expect(line).toContain('session.created a session');
    expect(line).toContain('support');
    expect(line).not.toContain('secret-token');
  });

  it('LOG_FORMAT=pretty makes readable lines without a terminal', () => {
    const out = capture();
    const logger = createLogger('info', {}, logDestination(false, 'pretty', out.sink));
    logger.warn({ event: 'turn.failed' });
    expect(out.text()).toMatch(/WARN.*turn\.failed/);
  });
});

describe('lazyChild', () => {
  it('makes the child (and reads its bindings) only when first used, then writes with them', () => {
    const lines: string[] = [];
    const parent = createLogger('info', {}, { write: (line: string) => void lines.push(line) });
    let read = 0;
    const bindings = () => {
      read++;
      return { sessionId: 's-1', trace_id: 't-1' };
    };
    const quiet = lazyChild(parent, bindings);
    const used = lazyChild(parent, bindings);
    expect(read).toBe(0);
    used.info({ event: 'turn.note' });
    used.warn({ event: 'turn.other' });
    expect(read).toBe(1);
    expect(lines.map((l) => JSON.parse(l))).toMatchObject([
      { event: 'turn.note', sessionId: 's-1', trace_id: 't-1' },
      { event: 'turn.other', sessionId: 's-1', trace_id: 't-1' },
    ]);
    expect(lazyChild(parent, { bot: 'b' }).level).toBe('info');
    expect('info' in quiet).toBe(true);
    expect(read).toBe(2);
  });
});
