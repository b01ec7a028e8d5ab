import { describe, expect, it } from 'vitest';
import { compileScript } from '../../src/dialog/compiler.ts';
import { tokenize } from '../../src/dialog/lexer.ts';
import { parseScript } from '../../src/dialog/parser.ts';

const errorsOf = (source: string) => compileScript('t.bas', source).errors.map((e) => e.message);
const compiles = (source: string) => {
  const { script, errors } = compileScript('t.bas', source);
  expect(errors.map((e) => e.message)).toEqual([]);
  return script!;
};

describe('dialog lexer', () => {
  it('reads numbers, texts with doubled quotes, operators, and skips comments', () => {
    const { tokens, errors } = tokenize('x = 1.5 + "say ""hi""" \' a comment\nREM another\ny <> .5', 't.bas');
    expect(errors).toEqual([]);
    expect(tokens.filter((t) => t.kind !== 'newline').map((t) => [t.kind, t.text, t.line, t.column])).toEqual(
      [
        ['ident', 'x', 1, 1],
        ['op', '=', 1, 3],
        ['number', '1.5', 1, 5],
        ['op', '+', 1, 9],
        ['string', 'say "hi"', 1, 11],
        ['ident', 'y', 3, 1],
        ['op', '<>', 3, 3],
        ['number', '.5', 3, 6],
        ['eof', '', 3, 8],
      ],
    );
  });

  it('continues a statement after _ at the end of a line, and counts lines on', () => {
    const { tokens } = tokenize('TALK "a" + _\n  "b"\nTALK "c"', 't.bas');
    const c = tokens.find((t) => t.text === 'c')!;
    expect([c.line, c.column]).toEqual([3, 6]);
    expect(tokens.filter((t) => t.kind === 'newline')).toHaveLength(2);
  });

  it('treats keywords case-insensitively', () => {
    const a = compiles('talk "x"\nIf 1 = 1 Then\n  tAlK "y"\nend if\n');
    const b = compiles('TALK "x"\nIF 1 = 1 THEN\n  TALK "y"\nEND IF\n');
    expect(a.units.get('')!.code.map((i) => i.op)).toEqual(b.units.get('')!.code.map((i) => i.op));
  });

  it.each([
    ['TALK "open', 't.bas:1:6: this text has no closing quote (")'],
    ['x = 12abc', 't.bas:1:5: "12a" is not a number'],
    ['x = 1 @ 2', 't.bas:1:7: unexpected character "@"'],
  ])('lexical error in %j', (source, message) => {
    expect(errorsOf(source)).toEqual([message]);
  });
});

describe('dialog parser: every keyword parses', () => {
  it('compiles a script that uses every statement', () => {
    const script = compiles(`
' a comment
REM another comment
TALK "Hello"
HEAR name
HEAR age AS INTEGER
HEAR color AS "red", "green"
answer = HEAR
answer2 = HEAR AS BOOLEAN
SET user_name = name
SET "email", "a@b.c"
SET BOT MEMORY "k", 1
n = GET "email"
GET user_name
m = GET BOT MEMORY "k"
c = GET SESSION "channel"
SET CONTEXT "profile" AS "premium"
CLEAR CONTEXT
CLEAR CONTEXT "profile"
USE KB "docs"
CLEAR KB "docs"
CLEAR KB ALL
CLEAR KB
USE TOOL "weather"
CLEAR TOOLS
CLEAR TOOL "weather"
ADD SUGGESTION "Yes" AS "y"
ADD SUGGESTION "No"
CLEAR SUGGESTIONS
LOG SESSION "milestone", "x"
LOG SESSION "plain"
LOG "free text"
IF n = 1 THEN
  TALK "one"
ELSE IF n = 2 THEN
  TALK "two"
ELSEIF n = 3 THEN
  TALK "three"
ELSE
  TALK "other"
END IF
IF n = 1 THEN TALK "inline" ELSE TALK "inline else"
FOR i = 1 TO 10 STEP 2
  IF i > 5 THEN EXIT FOR
NEXT i
FOR EACH x IN [1, 2]
NEXT
WHILE n < 3
  n = n + 1
  IF n = 2 THEN EXIT WHILE
WEND
WHILE FALSE
END WHILE
CALL Greet("a")
Greet("b")
Beep
r = Twice(2)
RUN "other.bas"
state = SAVE SESSION STATE
RESTORE SESSION STATE state
LET z = [1, [2, 3]]
z[1][0] = 5
reply = LLM "prompt " + name
END

FUNCTION Twice(v)
  RETURN v * 2
END FUNCTION

SUB Greet(who)
  TALK "hi " + who
  EXIT SUB
END SUB

SUB Beep
  RETURN
END SUB

ON SESSION END
  LOG SESSION "bye"
END ON
`);
    expect([...script.units.keys()].sort()).toEqual(['', '@end', 'BEEP', 'GREET', 'TWICE']);
    expect(script.runs.map((r) => r.script)).toEqual(['other.bas']);
  });

  it('gives every statement an anchor made of its enclosing blocks and its own text', () => {
    const script = compiles(
      'FOR i = 1 TO 2\n  IF i = 1 THEN\n    HEAR x\n  ELSE\n    HEAR x\n  END IF\nNEXT\nHEAR x\n',
    );
    const anchors = script.units.get('')!.statements.map((s) => s.anchor);
    expect(anchors).toContain('FOR I = 1 TO 2 > IF I = 1 THEN > THEN > HEAR X #0');
    expect(anchors).toContain('FOR I = 1 TO 2 > IF I = 1 THEN > ELSE > HEAR X #0');
    expect(anchors).toContain('HEAR X #0');
  });

  it('numbers repeated statements in a block', () => {
    const script = compiles('HEAR x\nHEAR x\n');
    expect(script.units.get('')!.statements.map((s) => s.anchor)).toEqual(['HEAR X #0', 'HEAR X #1']);
  });

  it('parses operator precedence the BASIC way', () => {
    const { ast } = parseScript('x = 1 + 2 * 3 ^ 2 = 19 AND NOT 1 > 2 OR FALSE', 't.bas');
    const stmt = ast.main[0]!;
    expect(stmt.kind).toBe('assign');
    const value = (stmt as Extract<typeof stmt, { kind: 'assign' }>).value;
    expect(value.kind).toBe('logical');
    expect((value as { op: string }).op).toBe('OR');
  });

  it('reads a bare GET name as that variable, and a GET expression up to a comparison', () => {
    const { ast } = parseScript('IF GET "a" + "b" = "x" THEN\nEND IF\ny = GET name', 't.bas');
    const cond = (ast.main[0] as { branches: { cond: { kind: string; left: { kind: string } } }[] })
      .branches[0]!.cond;
    expect(cond.kind).toBe('binary');
    expect(cond.left.kind).toBe('getVar');
    const y = ast.main[1] as { value: { name: { kind: string; value: string } } };
    expect(y.value.name).toMatchObject({ kind: 'literal', value: 'name' });
  });
});

describe('dialog parser and compiler: every error has its line and column', () => {
  it.each([
    // statements and blocks
    [
      'IF x = 1\n  TALK "a"\nEND IF',
      't.bas:1:9: expected THEN after the IF condition, found the end of the line',
    ],
    ['TALK (1 + 2', 't.bas:1:12: expected ")" to close "(", found the end of the line'],
    ['TALK "a" "b"', 't.bas:1:10: unexpected text "b" after the end of the statement'],
    ['IF 1 THEN\n  TALK "a"\n', 't.bas:1:1: IF has no END IF'],
    ['FOR i = 1 TO 2\n  TALK i\n', 't.bas:1:1: FOR has no NEXT'],
    ['WHILE TRUE\n  TALK 1\n', 't.bas:1:1: WHILE has no END WHILE'],
    ['FUNCTION F()\n  RETURN 1\n', 't.bas:1:1: FUNCTION F has no END FUNCTION'],
    ['SUB S\n', 't.bas:1:1: SUB S has no END SUB'],
    ['ON SESSION END\n  TALK 1\n', 't.bas:1:1: ON SESSION END has no END ON'],
    ['IF 1 THEN\n  FOR i = 1 TO 2\nEND IF', 't.bas:2:3: FOR has no NEXT (found END IF first)'],
    ['ELSE', 't.bas:1:1: ELSE without IF'],
    ['ELSE IF x THEN', 't.bas:1:1: ELSEIF without IF'],
    ['END IF', 't.bas:1:1: END IF without IF'],
    ['NEXT', 't.bas:1:1: NEXT without FOR'],
    ['WEND', 't.bas:1:1: WEND without WHILE'],
    ['END WHILE', 't.bas:1:1: END WHILE without WHILE'],
    ['END FUNCTION', 't.bas:1:1: END FUNCTION without FUNCTION'],
    ['END SUB', 't.bas:1:1: END SUB without SUB'],
    ['END ON', 't.bas:1:1: END ON without ON SESSION END'],
    ['FOR i = 1 TO 3\nNEXT j', 't.bas:2:6: NEXT j does not match FOR i'],
    [
      'IF 1 THEN\n  FUNCTION F()\n  END FUNCTION\nEND IF',
      't.bas:2:3: FUNCTION must be at the top level of a script, not inside a block',
    ],
    [
      'WHILE 1\n  ON SESSION END\n  END ON\nWEND',
      't.bas:2:3: ON SESSION END must be at the top level of a script, not inside a block',
    ],
    [
      'ON SESSION END\nEND ON\nON SESSION END\nEND ON',
      't.bas:3:1: a script has at most one ON SESSION END block',
    ],
    ['SUB A\nEND SUB\nSUB a\nEND SUB', 't.bas:3:1: A is defined twice'],
    ['FUNCTION (x)\nEND FUNCTION', 't.bas:1:10: expected the name of the FUNCTION, found "("'],
    ['FUNCTION F\nEND FUNCTION', 't.bas:1:11: expected "(" after FUNCTION F'],
    ['FUNCTION F(a, a)\nEND FUNCTION', 't.bas:1:10: parameter a appears twice in F'],
    ['SUB S(1)\nEND SUB', 't.bas:1:7: expected a variable name as a parameter of S, found "1"'],
    ['HEAR 5', 't.bas:1:6: expected a variable name after HEAR, found "5"'],
    ['IF = 3 THEN\nEND IF', 't.bas:1:4: expected a value, found "="'],
    ['FOR next = 1 TO 2\nNEXT', 't.bas:1:5: NEXT is a keyword and cannot name a variable'],
    ['5 = x', 't.bas:1:1: a statement starts with a keyword or a variable name, not "5"'],
    [
      'GET "name"',
      't.bas:1:5: a GET statement copies a session variable: GET name; otherwise write x = GET ...',
    ],
    ['USE LIST "x"', 't.bas:1:5: expected KB or TOOL after USE, found "LIST"'],
    ['ADD BUTTON "x"', 't.bas:1:5: expected SUGGESTION after ADD, found "BUTTON"'],
    ['CALL 5', 't.bas:1:6: expected the name of a SUB or FUNCTION after CALL, found "5"'],
    ['EXIT DO', 't.bas:1:6: expected FOR, WHILE, FUNCTION or SUB after EXIT, found "DO"'],
    ['SAVE SESSION STATE', 't.bas:1:1: SAVE SESSION STATE gives a value: write state = SAVE SESSION STATE'],
    ['RESTORE STATE x', 't.bas:1:9: expected SESSION after RESTORE, found "STATE"'],
    ['THEN x', 't.bas:1:1: THEN cannot start a statement'],
    ['a(1) = 2', 't.bas:1:6: to change a list item write a[index] = value'],
    ['PRINT "x"', 't.bas:1:1: unknown statement "PRINT"'],
    ['a[0] = HEAR', 't.bas:1:12: HEAR stores its answer in a plain variable, not a list item'],
    [
      'HEAR x AS COLOR',
      't.bas:1:11: unknown answer type COLOR: use TEXT, NUMBER, INTEGER, DATE, EMAIL, NAME, BOOLEAN, or a list of choices such as AS "yes", "no"',
    ],
    ['SET BOT MEMORY "k" 1', 't.bas:1:20: expected "," between the memory key and its value, found "1"'],
    [
      'SET CONTEXT "k", "v"',
      't.bas:1:16: expected AS after the context name (SET CONTEXT "name" AS value), found ","',
    ],
    [
      'SET "k" "v"',
      't.bas:1:9: expected "," between the variable name and its value (SET "name", value or SET name = value), found text "v"',
    ],
    ['CLEAR ALL', 't.bas:1:7: expected CONTEXT, KB, TOOLS, TOOL or SUGGESTIONS after CLEAR, found "ALL"'],
    [
      'IF 1 THEN FOR i = 1 TO 2',
      't.bas:1:11: a one-line IF cannot hold FOR: write the IF as a block with END IF',
    ],
    ['x = 1 +', 't.bas:1:8: expected a value, found the end of the line'],
    ['x = THEN', 't.bas:1:5: expected a value, found the keyword THEN'],
    ['TALK HEAR', 't.bas:1:6: HEAR waits for an answer and stands on its own line: HEAR x, or x = HEAR'],
    // compiler checks
    ['FUNCTION LEN(x)\nEND FUNCTION', 't.bas:1:1: LEN is a built-in function: choose another name'],
    [
      'ON SESSION END\n  HEAR x\nEND ON',
      't.bas:2:3: HEAR cannot wait for an answer inside ON SESSION END: the session is ending',
    ],
    ['NOW()', 't.bas:1:1: NOW gives a value: use it in an expression, such as x = NOW(...)'],
    ['Missing(1)', 't.bas:1:1: unknown SUB or FUNCTION MISSING'],
    ['SUB S\n  RETURN 1\nEND SUB', 't.bas:2:3: a SUB returns no value: write RETURN alone'],
    ['RETURN 1', 't.bas:1:1: RETURN with a value belongs in a FUNCTION'],
    ['EXIT FUNCTION', 't.bas:1:1: EXIT FUNCTION outside a FUNCTION'],
    ['EXIT SUB', 't.bas:1:1: EXIT SUB outside a SUB'],
    ['EXIT FOR', 't.bas:1:1: EXIT FOR outside a FOR loop'],
    ['FOR i = 1 TO 2\n  EXIT WHILE\nNEXT', 't.bas:2:3: EXIT WHILE outside a WHILE loop'],
    ['x = F(1)\nFUNCTION F(a, b)\n  RETURN a\nEND FUNCTION', 't.bas:1:5: F takes 2 arguments, not 1'],
    ['x = S()\nSUB S\nEND SUB', 't.bas:1:5: S is a SUB and gives no value: call it on its own line'],
    ['x = NOPE(1)', 't.bas:1:5: unknown function NOPE'],
    ['x = LEN(1, 2)', 't.bas:1:5: LEN takes 1 argument, not 2'],
    ['x = MID("a")', 't.bas:1:5: MID takes 2 to 3 arguments, not 1'],
    [
      'x = GET SESSION "shoe_size"',
      't.bas:1:17: GET SESSION knows no "shoe_size": use one of "channel", "user_id", "user_name", "auth_level", "last_interaction", "bot", "id", "session_id", "session.id", "message_count", "session.message_count", "created_at", "transfer_end_reason", "session.created_at", "files"',
    ],
  ])('%j', (source, message) => {
    expect(errorsOf(source)).toEqual([message]);
  });

  it('reports several errors of one script, in order, and goes on after each', () => {
    expect(errorsOf('TALK "ok"\nPRINT 1\nTALK "fine"\nx = \nFOR i = 1 TO 2\nNEXT k\nTALK "end"')).toEqual([
      't.bas:2:1: unknown statement "PRINT"',
      't.bas:4:5: expected a value, found the end of the line',
      't.bas:6:6: NEXT k does not match FOR i',
    ]);
  });

  it('gives no script when there is an error', () => {
    expect(compileScript('t.bas', 'PRINT 1').script).toBeUndefined();
  });
});
