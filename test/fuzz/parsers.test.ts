import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NotAnActivityError, parseActivity } from '../../adapters/teams/inbound/parse.ts';
import { parseClientFrame } from '../../adapters/web/protocol.ts';
import { NotAWhatsAppWebhookError, parseWebhook } from '../../adapters/whatsapp/webhook/parse.ts';
import { BotSettingsSchema } from '../../src/config/bots.ts';
import { parseScript } from '../../src/dialog/parser.ts';
import * as teamsDoc from '../fixtures/teams/activities.ts';
import * as waDoc from '../fixtures/whatsapp/cloud-payloads.ts';
import { REPO_ROOT } from '../helpers/hub.ts';

/**
 * Property tests of parsers that take outside data, in process: whatever arrives, each answers
 * with a result or its own typed refusal, never another exception. `npm run fuzz` runs 10,000
 * inputs per parser (FUZZ_RUNS, FUZZ_SEED to replay); the suite runs fewer to stay quick. A
 * failure prints its seed and path: add it to REGRESSIONS below to keep it.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 500);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const params = (): fc.Parameters<unknown> => ({
  numRuns: RUNS,
  ...(SEED === undefined ? {} : { seed: SEED }),
});

/** Seeds (with their paths) of failures found once; replayed on every run. None so far. */
const REGRESSIONS: { parser: string; seed: number; path?: string }[] = [];

type Json = unknown;

/** Every leaf path of a JSON value. */
function leafPaths(value: Json, at: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== 'object') return [at];
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  if (entries.length === 0) return [at];
  return entries.flatMap(([k, v]) => leafPaths(v, [...at, k]));
}

function replaceAt(value: Json, at: (string | number)[], by: Json): Json {
  if (at.length === 0) return by;
  const [head, ...rest] = at;
  const copy = (Array.isArray(value) ? [...value] : { ...(value as object) }) as Record<
    string | number,
    Json
  >;
  copy[head!] = replaceAt(copy[head!], rest, by);
  return copy;
}

/** A real payload with some of its leaves replaced by arbitrary JSON (or removed). */
const mutated = (documents: Json[]) =>
  fc
    .tuple(
      fc.constantFrom(...documents),
      fc.array(fc.tuple(fc.nat(), fc.oneof(fc.jsonValue(), fc.constant(undefined))), { maxLength: 4 }),
    )
    .map(([doc, changes]) => {
      let out = structuredClone(doc);
      for (const [index, by] of changes) {
        const paths = leafPaths(out);
        out = replaceAt(out, paths[index % paths.length]!, by);
      }
      return out;
    });

const waPayloads = (Object.values(waDoc) as unknown[]).filter((v) => typeof v === 'object' && v !== null);
const teamsPayloads = (Object.values(teamsDoc) as unknown[]).filter(
  (v) => typeof v === 'object' && v !== null,
);
const scripts = fs
  .readdirSync(path.join(REPO_ROOT, 'config/bots/default'))
  .filter((f) => f.endsWith('.bas'))
  .map((f) => fs.readFileSync(path.join(REPO_ROOT, 'config/bots/default', f), 'utf8'));
const botJsons = ['default', 'support'].map(
  (b) => JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'config/bots', b, 'bot.json'), 'utf8')) as Json,
);

/** Runs `property` with the run's parameters, then every kept regression seed of `parser`. */
function check(parser: string, property: fc.IProperty<[unknown]> | fc.IAsyncProperty<[unknown]>) {
  fc.assert(property as fc.IProperty<[unknown]>, params());
  for (const r of REGRESSIONS.filter((x) => x.parser === parser))
    fc.assert(property as fc.IProperty<[unknown]>, {
      seed: r.seed,
      ...(r.path ? { path: r.path } : {}),
      numRuns: 1,
    });
}

describe(`parsers of outside data never crash (${RUNS} inputs each)`, () => {
  it('web socket frames: a frame or a bad_frame / invalid_text refusal', () => {
    const frames = [
      { type: 'hello', bot: 'default', lastSeq: 0 },
      { type: 'message', id: 'abc', text: 'hi' },
      { type: 'ack', seq: 3 },
      { type: 'authenticate', jwt: 'a.b.c' },
    ];
    const raw = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.json(),
      mutated(frames).map((f) => JSON.stringify(f) ?? ''),
    );
    check(
      'frame',
      fc.property(raw, (text) => {
        const out = parseClientFrame(text as string);
        expect('frame' in out || ['bad_frame', 'invalid_text'].includes(out.code)).toBe(true);
      }),
    );
  });

  it('WhatsApp webhooks: a parse or NotAWhatsAppWebhookError', () => {
    check(
      'whatsapp',
      fc.property(fc.oneof(mutated(waPayloads), fc.jsonValue()), (body) => {
        try {
          const out = parseWebhook(body);
          expect(Array.isArray(out.messages)).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(NotAWhatsAppWebhookError);
        }
      }),
    );
  });

  it('Teams activities: a parse or NotAnActivityError', () => {
    check(
      'teams',
      fc.property(fc.oneof(mutated(teamsPayloads), fc.jsonValue()), (body) => {
        try {
          expect(['message', 'action', 'start', 'ignore']).toContain(parseActivity(body).kind);
        } catch (err) {
          expect(err).toBeInstanceOf(NotAnActivityError);
        }
      }),
    );
  });

  it('BASIC source: an AST and errors with line and column, never an exception', () => {
    const source = fc.oneof(
      fc.string({ unit: 'binary' }),
      // A real script with a span cut out or replaced.
      fc
        .tuple(fc.constantFrom(...scripts), fc.nat(), fc.nat({ max: 40 }), fc.string({ unit: 'binary' }))
        .map(
          ([s, at, len, by]) => s.slice(0, at % (s.length + 1)) + by + s.slice((at % (s.length + 1)) + len),
        ),
    );
    check(
      'basic',
      fc.property(source, (text) => {
        const { errors } = parseScript(text as string, 'fuzz.bas');
        for (const e of errors) expect(e.line).toBeGreaterThan(0);
      }),
    );
  });

  it('bot.json: settings or a zod refusal', () => {
    check(
      'bot.json',
      fc.property(fc.oneof(mutated(botJsons), fc.jsonValue()), (settings) => {
        const out = BotSettingsSchema.safeParse(settings);
        expect(typeof out.success).toBe('boolean');
      }),
    );
  });
});
