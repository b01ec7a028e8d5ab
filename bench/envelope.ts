import type { EnvelopeInput } from '../src/envelope.ts';

/** The bench's message `n` of session `session`: one WhatsApp number per session, to the default bot. */
export const benchEnvelope = (session: number, n: number): EnvelopeInput & { id: string } => ({
  id: `whatsapp:bench.${session}.${n}`,
  channel: 'whatsapp',
  bot: 'default',
  from: { id: `+1555${String(session).padStart(7, '0')}` },
  text: `m${n}`,
  receivedAt: new Date().toISOString(),
});
