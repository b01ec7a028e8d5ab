import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';
import { JsonTooDeepError, parseJson } from '../json.ts';
import { invalidTextPaths } from '../text.ts';

/** 400 `invalid_text`: these fields hold a NUL or a lone surrogate. */
export const invalidText = (fields: string[]) =>
  new ApiError(
    400,
    'invalid_text',
    `${fields.join(', ')}: text must not contain NUL or unpaired surrogate characters`,
  );

/** An error the API answers with `{"error": {"code", "message"}}` and its status. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * 503 `unavailable` with Retry-After: a service the hub depends on (PostgreSQL, Redis) is away for
 * now. What a transient error is answered with (app.onError), and what a route that finds it so
 * itself answers.
 */
export const unavailable = () =>
  new ApiError(503, 'unavailable', 'a service the hub depends on is not reachable right now; retry shortly', {
    'Retry-After': '2',
  });

export function errorResponse(c: Context, error: ApiError): Response {
  for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
  return c.json({ error: { code: error.code, message: error.message } }, error.status);
}

/**
 * Reads a JSON body and validates it. An empty body is `{}` where `allowEmpty`. Malformed
 * JSON, and values of the wrong shape, are 400 with a message that says what is wrong; so is a
 * NUL or a lone surrogate in any string (`invalid_text`: no store keeps them, and a client that
 * sends them is told rather than silently changed).
 */
export async function readJson<S extends z.ZodType>(
  c: Context,
  schema: S,
  options: { allowEmpty?: boolean } = {},
): Promise<z.infer<S>> {
  const text = await c.req.text();
  let raw: unknown = {};
  if (text.trim() !== '' || !options.allowEmpty) {
    try {
      raw = parseJson(text);
    } catch (err) {
      if (err instanceof JsonTooDeepError) throw new ApiError(400, 'invalid_json', err.message);
      throw new ApiError(400, 'invalid_json', 'the request body is not valid JSON');
    }
  }
  const bad = invalidTextPaths(raw);
  if (bad.length > 0) throw invalidText(bad.map((p) => p || 'the body'));
  return parseInput(schema, raw);
}

/** `input` through `schema`, or a 400 `invalid_request` naming every problem (`path: message; …`). */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
      .join('; ');
    throw new ApiError(400, 'invalid_request', problems);
  }
  return parsed.data;
}
