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

/** A whole number from `min` to `max`, `def` when unset. */
export const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  setting(z.coerce.number().int().min(min).max(max).default(def));

/** A URL as `new URL` reads it, or undefined when it is none. */
function parseUrl(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

/**
 * An optional URL of one of `protocols` (`['postgres', 'postgresql']`) naming a host, or, where
 * `hostParam` is given, a query parameter that names one (PostgreSQL's `?host=/run/postgresql`,
 * a socket). A bad one is described with `example`, never echoed: it may hold a password.
 */
export function serviceUrl(protocols: readonly string[], example: string, hostParam?: string) {
  const schemes = protocols.map((p) => `${p}://`).join(' or ');
  return setting(
    z
      .string()
      .refine(
        (value) => {
          const url = parseUrl(value);
          if (!url || !protocols.includes(url.protocol.slice(0, -1))) return false;
          return url.hostname !== '' || (hostParam !== undefined && url.searchParams.get(hostParam));
        },
        { error: `must be a ${schemes} URL naming a host, such as ${example}` },
      )
      .optional(),
  );
}

/** `path: message; path: message` — zod's issues in one line. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], root = ''): string {
  return issues.map((i) => `${i.path.join('.') || root}: ${i.message}`).join('; ');
}

/** What `parseEnv` found wrong in the environment, by the error it threw. */
const issuesOf = new WeakMap<Error, SettingProblem[]>();

/** One variable that is not valid (`field` absent: a problem of several together). */
export interface SettingProblem {
  field?: string;
  message: string;
}

/**
 * The variables an error of `parseEnv` names, one problem each, as `switchboard check` prints
 * them (one a line); undefined for any other error.
 */
export function settingProblems(err: unknown): SettingProblem[] | undefined {
  return err instanceof Error ? issuesOf.get(err) : undefined;
}

/** The environment read through `schema`, or the error `fail` makes of every problem in one line. */
export function parseEnv<S extends ZodType>(
  schema: S,
  env: NodeJS.ProcessEnv,
  fail: (problems: string) => Error,
): z.output<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const err = fail(formatIssues(parsed.error.issues));
    issuesOf.set(
      err,
      parsed.error.issues.map((i) => ({
        ...(i.path.length > 0 ? { field: i.path.join('.') } : {}),
        message: i.message,
      })),
    );
    throw err;
  }
  return parsed.data;
}
