import { type ZodType, z } from 'zod';

/**
 * What every configuration reader (the hub's, each adapter's) shares: an unset variable and an
 * empty or blank one mean the same (the default), and a bad one is reported by name, never by value.
 */

/** A blank variable (`FOO=` or `FOO=" "`) is an unset one. */
export const emptyAsUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);

/** `schema`, applied after a blank value became unset (so that `.default()` and `.optional()` apply). */
export const setting = <S extends ZodType>(schema: S) => z.preprocess(emptyAsUndefined, schema);

export const optionalString = setting(z.string().optional());

/** A whole number at least `min`, `def` when unset. */
export const int = (def: number, min = 0) => setting(z.coerce.number().int().min(min).default(def));

/** `path: message; path: message` — zod's issues in one line. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], root = ''): string {
  return issues.map((i) => `${i.path.join('.') || root}: ${i.message}`).join('; ');
}

/** The environment read through `schema`, or the error `fail` makes of every problem in one line. */
export function parseEnv<S extends ZodType>(
  schema: S,
  env: NodeJS.ProcessEnv,
  fail: (problems: string) => Error,
): z.output<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) throw fail(formatIssues(parsed.error.issues));
  return parsed.data;
}
