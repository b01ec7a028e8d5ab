/**
 * The one database port. Two drivers implement it: PostgreSQL through `pg` and the embedded
 * PGlite. Everything above it speaks plain PostgreSQL SQL with `$n` parameters, so one set of
 * migrations and queries runs unchanged on both.
 */
export interface QueryResult<Row> {
  rows: Row[];
  rowCount: number;
}

/**
 * A statement run often enough to be prepared once per connection: PostgreSQL then skips
 * parsing and planning it each time (about 0.6 ms for the group commit's statement). Only for
 * fixed SQL text: each name holds one plan in every connection.
 */
export interface PreparedStatement {
  readonly name: string;
  readonly text: string;
}

export const prepared = (name: string, text: string): PreparedStatement => ({ name, text });

export interface Queryable {
  query<Row = Record<string, unknown>>(
    sql: string | PreparedStatement,
    params?: readonly unknown[],
  ): Promise<QueryResult<Row>>;
  /** Runs a script of several statements with no parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Takes a session-level advisory lock on a connection of its own and keeps it until released
   * (or the process dies). Undefined when another process holds it.
   */
  holdLock(key: number): Promise<(() => Promise<void>) | undefined>;
  /** A cheap round trip, for readiness checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** PostgreSQL's int8 and numeric arrive as strings; counts and sequence numbers here fit in a double. */
export const INT8_OID = 20;
export const parseInt8 = (value: string): number => Number(value);
