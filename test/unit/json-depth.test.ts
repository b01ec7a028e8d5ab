import { describe, expect, it } from 'vitest';
import { JsonTooDeepError, jsonTextDepth, MAX_JSON_DEPTH, parseJson } from '../../src/json.ts';

describe('JSON from outside: nesting is limited', () => {
  it('measures nesting by brackets outside strings', () => {
    expect(jsonTextDepth('1')).toBe(0);
    expect(jsonTextDepth('{"a":[1,{"b":[]}]}')).toBe(4);
    expect(jsonTextDepth('{"a":"[[[[{{{{\\\\","b":"\\"[["}')).toBe(1);
  });

  it('parses up to the limit and refuses deeper JSON as a SyntaxError (found by the fuzz: a 500 before)', () => {
    const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    expect(parseJson(nested(MAX_JSON_DEPTH))).toBeInstanceOf(Array);
    expect(() => parseJson(nested(MAX_JSON_DEPTH + 1))).toThrow(JsonTooDeepError);
    expect(() => parseJson(nested(100_000))).toThrow(SyntaxError);
    expect(() => parseJson('{"a":')).toThrow(SyntaxError);
  });
});
