import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, lazyChild, logDestination } from '../../src/logger.ts';
import { enableTracing, linkedContext } from '../../src/telemetry/tracing.ts';

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
  it('writes its lines through the parent with its bindings and trace ids, and makes a child only for what a line cannot do', async () => {
    const lines: string[] = [];
    const parent = createLogger('info', {}, { write: (line: string) => void lines.push(line) });
    const made: unknown[] = [];
    const counting = new Proxy(parent, {
      get: (target, key) =>
        key === 'child'
          ? (bindings: object) => {
              made.push(bindings);
              return target.child(bindings);
            }
          : Reflect.get(target, key, target),
    });
    await enableTracing(true);
    try {
      const trace = linkedContext({
        context: { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 },
      });
      const quiet = lazyChild(counting, { sessionId: 's-1' }, trace);
      const used = lazyChild(counting, { sessionId: 's-1' }, trace);
      expect(made).toEqual([]);
      used.info({ event: 'turn.note' });
      used.warn({ event: 'turn.other', sessionId: 's-own' });
      used.info('a message %s', 'alone');
      used.error(new Error('it broke'), 'with an error');
      expect(made).toEqual([]);
      const ids = { trace_id: '0af7651916cd43dd8448eb211c80319c', span_id: 'b7ad6b7169203331' };
      const written = lines.map((l) => JSON.parse(l));
      expect(written).toMatchObject([
        { event: 'turn.note', sessionId: 's-1', ...ids },
        { event: 'turn.other', sessionId: 's-own', ...ids },
        { msg: 'a message alone', sessionId: 's-1', ...ids },
        { msg: 'with an error', sessionId: 's-1', ...ids, err: { message: 'it broke', type: 'Error' } },
      ]);
      expect(written[3].err.stack).toContain('it broke');
      expect(lazyChild(counting, { bot: 'b' }).level).toBe('info');
      expect(made).toEqual([{ bot: 'b' }]);
      expect('info' in quiet).toBe(true);
      expect(made).toHaveLength(2);
      expect(made.at(-1)).toEqual({ sessionId: 's-1', ...ids });
    } finally {
      await enableTracing(false);
    }
  });

  it('writes nothing for a line below the level, and the next line that is above it with its bindings (no child either way)', () => {
    const lines: string[] = [];
    const parent = createLogger('info', {}, { write: (line: string) => void lines.push(line) });
    let made = 0;
    const counting = new Proxy(parent, {
      get: (target, key) =>
        key === 'child'
          ? (bindings: object) => {
              made++;
              return target.child(bindings);
            }
          : Reflect.get(target, key, target),
    });
    const child = lazyChild(counting, { sessionId: 's-2' });
    child.debug({ event: 'commit.batch_start' });
    child.trace({ event: 'deeper' });
    expect(made).toBe(0);
    expect(lines).toEqual([]);
    child.warn({ event: 'cache.write_failed' });
    child.debug({ event: 'still.below' });
    expect(made).toBe(0);
    expect(lines.map((l) => JSON.parse(l))).toMatchObject([
      { event: 'cache.write_failed', sessionId: 's-2' },
    ]);
  });
});
