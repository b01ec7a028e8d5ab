import type { Db } from '../../src/store/db.ts';

/** What a client of a dependency that is away throws (pg, ioredis): transient, so HTTP answers 503. */
export function awayError(what: string): Error {
  return Object.assign(new Error(`connect ECONNREFUSED 127.0.0.1 (${what} away, test)`), {
    code: 'ECONNREFUSED',
  });
}

/**
 * Makes `target[method]` fail once, as if its dependency were away, on the first call whose
 * arguments `when` accepts; every other call goes through. `failures` counts the failed calls;
 * `restore` puts the method back.
 */
export function failOnce<T extends object, K extends keyof T>(
  target: T,
  method: K,
  when: T[K] extends (...args: infer A) => unknown ? (...args: A) => boolean : never,
): { readonly failures: number; restore(): void } {
  const original = target[method] as (...args: unknown[]) => Promise<unknown>;
  let failures = 0;
  const patched = async (...args: unknown[]) => {
    if (failures === 0 && (when as (...a: unknown[]) => boolean)(...args)) {
      failures++;
      throw awayError(String(method));
    }
    return original.apply(target, args);
  };
  target[method] = patched as T[K];
  return {
    get failures() {
      return failures;
    },
    restore() {
      target[method] = original as T[K];
    },
  };
}

/**
 * `db` with its first query whose SQL contains `fragment` failing as if PostgreSQL were away;
 * every other query (and transaction) goes to `db`. `failures` counts the failed queries.
 */
export function dbFailingOnce(db: Db, fragment: string): { db: Db; readonly failures: number } {
  let failures = 0;
  const query: Db['query'] = async (sql, params) => {
    if (failures === 0 && typeof sql === 'string' && sql.includes(fragment)) {
      failures++;
      throw awayError('PostgreSQL');
    }
    return db.query(sql, params);
  };
  const proxied = new Proxy(db, {
    get(target, prop) {
      if (prop === 'query') return query;
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    db: proxied,
    get failures() {
      return failures;
    },
  };
}
