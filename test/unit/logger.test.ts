import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, logDestination } from '../../src/logger.ts';

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
