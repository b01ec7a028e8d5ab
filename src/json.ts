/**
 * The deepest nesting of arrays and objects accepted in JSON from outside. Real payloads
 * (activities with Adaptive Cards, Slack blocks, webhooks) stay under 20; walking data nested
 * thousands deep (to find invalid text, to clean it) would overflow the stack.
 */
export const MAX_JSON_DEPTH = 64;

/** JSON nested deeper than MAX_JSON_DEPTH: refused as malformed JSON is. */
export class JsonTooDeepError extends SyntaxError {
  override name = 'JsonTooDeepError';
}

/** The deepest nesting of arrays and objects in a JSON text (brackets outside strings), without parsing it. */
export function jsonTextDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c)
        i++; // backslash: the next character is escaped
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x5b || ch === 0x7b) {
      if (++depth > deepest) deepest = depth;
    } else if (ch === 0x5d || ch === 0x7d) depth--;
  }
  return deepest;
}

/**
 * JSON.parse for text from outside: throws SyntaxError for malformed JSON, and JsonTooDeepError
 * (a SyntaxError) for JSON nested deeper than `maxDepth`.
 */
export function parseJson(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  if (jsonTextDepth(text) > maxDepth)
    throw new JsonTooDeepError(`JSON nested deeper than ${maxDepth} levels is not accepted`);
  return JSON.parse(text);
}
