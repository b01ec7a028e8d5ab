import { z } from 'zod';

/** A cursor's text before base64url: microseconds since the epoch, a dot, a row's UUID. */
const CURSOR_TEXT = /^(-?\d{1,16})\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/** A position in a list ordered by a time and an id: the time in microseconds since the epoch (as text). */
export interface PageCursor {
  us: string;
  id: string;
}

/** The `next_before` a list hands out for its last row. */
export const encodePageCursor = ({ us, id }: PageCursor): string =>
  Buffer.from(`${us}.${id}`).toString('base64url');

/**
 * A `before` cursor handed out by `encodePageCursor`. Only what such a cursor can hold passes: a
 * time within a safe integer of microseconds (years 1684 to 2255) and a UUID, so an altered one is
 * a 400 here rather than a bigint, timestamp or uuid cast failing in SQL (a 500).
 */
export const PageCursorSchema = z
  .string()
  .max(200)
  .transform((raw, ctx): PageCursor => {
    const match = CURSOR_TEXT.exec(Buffer.from(raw, 'base64url').toString('utf8'));
    if (!match || !Number.isSafeInteger(Number(match[1]))) {
      ctx.addIssue({ code: 'custom', message: 'not a cursor this API handed out' });
      return z.NEVER;
    }
    return { us: match[1]!, id: match[2]! };
  });
