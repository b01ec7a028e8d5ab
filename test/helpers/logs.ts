import { Writable } from 'node:stream';
import { type Level, pino } from 'pino';

/**
 * A logger that keeps the lines it writes, parsed, for a test to assert on what an operator
 * would be shown (`level`: warn keeps only warnings and errors).
 */
export function capturingLogger(level: Level = 'warn') {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return {
    logger: pino({ level }, stream),
    lines,
    /** The lines of `event` about envelope `envelopeId`. */
    about: (event: string, envelopeId: string) =>
      lines.filter((l) => l.event === event && l.envelopeId === envelopeId),
  };
}
