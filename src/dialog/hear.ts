import type { Value } from './values.ts';

/** The answer types of `HEAR var AS type`. A list of choices is the other form. */
export const HEAR_TYPES = ['TEXT', 'NUMBER', 'INTEGER', 'DATE', 'EMAIL', 'NAME', 'BOOLEAN'] as const;
export type HearType = (typeof HEAR_TYPES)[number];

export function isHearType(word: string): word is HearType {
  return (HEAR_TYPES as readonly string[]).includes(word);
}

export type HearResult = { ok: true; value: Value } | { ok: false; retry: string };

const RETRY: Record<HearType, string> = {
  TEXT: 'Sorry, I did not get an answer. Please type it again.',
  NUMBER: 'Sorry, I need a number here, for example 42 or 3.5. Please try again.',
  INTEGER: 'Sorry, I need a whole number here, for example 7. Please try again.',
  DATE: 'Sorry, I need a date here, for example 2024-12-31 or 31/12/2024. Please try again.',
  EMAIL: 'Sorry, that does not look like an email address (for example ana@example.com). Please try again.',
  NAME: 'Sorry, I need a name here, written with letters. Please try again.',
  BOOLEAN: 'Sorry, please answer yes or no.',
};

const YES = new Set([
  'yes',
  'y',
  'true',
  '1',
  'sure',
  'ok',
  'okay',
  'yeah',
  'yep',
  'sim',
  's',
  'si',
  'sí',
  'ja',
  'oui',
]);
const NO = new Set(['no', 'n', 'false', '0', 'nope', 'nah', 'não', 'nao', 'nein', 'non']);
const THOUSANDS = /^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$/;
const DECIMAL_COMMA = /^[-+]?\d+,\d+$/;
const PLAIN_NUMBER = /^[-+]?(\d+(\.\d*)?|\.\d+)$/;
const EMAIL = /^[^\s@<>(),;:"]+@[^\s@<>(),;:"]+\.[^\s@<>(),;:".]{2,}$/;
const NAME = /^[\p{L}\p{M}][\p{L}\p{M}'’. -]*$/u;
const MAX_NAME_LENGTH = 100;
const DAY_MS = 86_400_000;

function parseNumber(text: string): number | undefined {
  const t = text.replace(/\s+/g, '');
  if (THOUSANDS.test(t)) return Number(t.replace(/,/g, ''));
  if (DECIMAL_COMMA.test(t)) return Number(t.replace(',', '.'));
  if (PLAIN_NUMBER.test(t)) return Number(t);
  return undefined;
}

function isoDay(year: number, month: number, day: number): string | undefined {
  const d = new Date(Date.UTC(year, month - 1, day));
  if (d.getUTCFullYear() !== year || d.getUTCMonth() !== month - 1 || d.getUTCDate() !== day)
    return undefined;
  return d.toISOString().slice(0, 10);
}

/** A day as YYYY-MM-DD: ISO, day-first (31/12/2024, 31.12.2024, 31-12-2024), today/tomorrow/yesterday (UTC). */
export function parseDate(text: string, now = new Date()): string | undefined {
  const t = text.trim().toLowerCase();
  const relative: Record<string, number> = { today: 0, tomorrow: 1, yesterday: -1 };
  if (Object.hasOwn(relative, t))
    return new Date(now.getTime() + relative[t]! * DAY_MS).toISOString().slice(0, 10);
  let m = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(t);
  if (m) return isoDay(Number(m[1]), Number(m[2]), Number(m[3]));
  m = /^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$/.exec(t);
  if (m) return isoDay(Number(m[3]), Number(m[2]), Number(m[1]));
  return undefined;
}

/** Checks an answer to `HEAR ... AS type` and converts it; an invalid one gets a polite retry message. */
export function checkAnswer(type: HearType, text: string): HearResult {
  const t = text.trim();
  const fail = { ok: false as const, retry: RETRY[type] };
  switch (type) {
    case 'TEXT':
      return t ? { ok: true, value: t } : fail;
    case 'NUMBER': {
      const n = parseNumber(t);
      return n === undefined || !Number.isFinite(n) ? fail : { ok: true, value: n };
    }
    case 'INTEGER': {
      const n = parseNumber(t);
      return n === undefined || !Number.isSafeInteger(n) ? fail : { ok: true, value: n };
    }
    case 'DATE': {
      const d = parseDate(t);
      return d ? { ok: true, value: d } : fail;
    }
    case 'EMAIL':
      return EMAIL.test(t) ? { ok: true, value: t } : fail;
    case 'NAME': {
      const name = t.replace(/\s+/g, ' ');
      return name.length >= 2 && name.length <= MAX_NAME_LENGTH && NAME.test(name)
        ? { ok: true, value: name }
        : fail;
    }
    case 'BOOLEAN': {
      const w = t.toLowerCase().replace(/[.!]+$/, '');
      if (YES.has(w)) return { ok: true, value: true };
      if (NO.has(w)) return { ok: true, value: false };
      return fail;
    }
  }
}

/** An answer to `HEAR ... AS "a", "b"`: one of the choices (case-insensitive) or its number in the list. */
export function checkChoice(choices: string[], text: string): HearResult {
  const t = text.trim().toLowerCase();
  const found = choices.find((c) => c.trim().toLowerCase() === t);
  if (found !== undefined) return { ok: true, value: found };
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (n >= 1 && n <= choices.length) return { ok: true, value: choices[n - 1]! };
  }
  return { ok: false, retry: `Sorry, please choose one of: ${choices.join(', ')}.` };
}
