/**
 * Time bounds in SQL, on the database's clock. Rows are stamped by PostgreSQL's `now()`
 * (microseconds); a JS `Date` has milliseconds, so a job comparing rows with its own
 * `new Date()` counts a row written in that same millisecond as later than "now" (and a database
 * on another host runs its own clock). Jobs that must see everything until now therefore compute
 * their bounds in the statement.
 */

/** `$n` milliseconds as an interval. */
export const millis = (param: string) => `(${param}::double precision * interval '1 millisecond')`;

/** `$n` milliseconds before the database's now. */
export const msAgo = (param: string) => `(now() - ${millis(param)})`;

/** The database's now, or the time in `$n` when a test runs a job on a clock of its own (NULL: the database's). */
export const nowOr = (param: string) => `coalesce(${param}::timestamptz, now())`;
