import { afterEach, describe, expect, it } from 'vitest';
import { DialogStateSchema } from '../../src/dialog/state.ts';
import { DialogHarness } from '../helpers/dialog.ts';

const harnesses: DialogHarness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.cleanup();
});

async function bot(
  scripts: Record<string, string>,
  options: Parameters<typeof DialogHarness.create>[1] = {},
) {
  const h = await DialogHarness.create(scripts, options);
  harnesses.push(h);
  return h;
}

/** What start.bas says when a session starts. */
async function talk(source: string, options: Parameters<typeof DialogHarness.create>[1] = {}) {
  const h = await bot({ 'start.bas': source }, options);
  const result = await h.start();
  const errors = h.logs.filter((l) => l.event === 'dialog.runtime_error');
  expect(errors).toEqual([]);
  return result.texts;
}

describe('TALK and expressions', () => {
  it.each([
    ['1 + 2', '3'],
    ['"a" + 1', 'a1'],
    ['1 + "a"', '1a'],
    ['0.1 + 0.2', '0.3'],
    ['10 - 4 * 2', '2'],
    ['(10 - 4) * 2', '12'],
    ['7 / 2', '3.5'],
    ['7 \\ 2', '3'],
    ['7 MOD 3', '1'],
    ['2 ^ 10', '1024'],
    ['-3 + 1', '-2'],
    ['- -3', '3'],
    ['"x" & 1 & TRUE', 'x1true'],
    ['"n=" & NULL', 'n='],
    ['1 = 1', 'true'],
    ['"5" = 5', 'true'],
    ['"a" = "A"', 'false'],
    ['"a" <> "b"', 'true'],
    ['2 < 10', 'true'],
    ['"2" < "10"', 'false'],
    ['3 >= 3 AND 2 <= 1', 'false'],
    ['NOT TRUE', 'false'],
    ['TRUE AND FALSE OR TRUE', 'true'],
    ['NULL = ""', 'true'],
    ['NULL = 0', 'true'],
    ['[1, 2] + [3]', '1, 2, 3'],
    ['[1, [2, 3]][1][0]', '2'],
    ['"hello"[1]', 'e'],
    ['1 + 2 * 3 ^ 2', '19'],
    ['"a" + _\n  "b"', 'ab'],
  ])('TALK %s', async (expr, expected) => {
    expect(await talk(`TALK ${expr}`)).toEqual([expected]);
  });

  it.each([
    ['LEN("héllo")', '5'],
    ['LEN([1, 2, 3])', '3'],
    ['LEN(NULL)', '0'],
    ['UCASE("abc")', 'ABC'],
    ['LCASE("ABC")', 'abc'],
    ['"[" + TRIM("  a b  ") + "]"', '[a b]'],
    ['"[" + LTRIM("  a  ") + "]"', '[a  ]'],
    ['"[" + RTRIM("  a  ") + "]"', '[  a]'],
    ['LEFT("hello", 2)', 'he'],
    ['RIGHT("hello", 3)', 'llo'],
    ['"[" + RIGHT("hello", 0) + "]"', '[]'],
    ['MID("hello", 2, 3)', 'ell'],
    ['MID("hello", 3)', 'llo'],
    ['INSTR("hello", "l")', '3'],
    ['INSTR(4, "hello", "l")', '4'],
    ['INSTR("hello", "z")', '0'],
    ['REPLACE("a-b-c", "-", "+")', 'a+b+c'],
    ['VAL("12.5abc") + 1', '13.5'],
    ['VAL("abc")', '0'],
    ['STR(3.5) + "!"', '3.5!'],
    ['ROUND(2.5)', '3'],
    ['ROUND(-2.5)', '-3'],
    ['ROUND(1.005, 2)', '1.01'],
    ['ROUND(1234.5678, 1)', '1234.6'],
    ['FORMAT(1234.5, "#,##0.00")', '1,234.50'],
    ['FORMAT(-1234567, "#,##0")', '-1,234,567'],
    ['FORMAT(0.256, "0.0%")', '25.6%'],
    ['FORMAT(5, "000")', '005'],
    ['FORMAT(9.99, "$0.00")', '$9.99'],
    ['FORMAT(2.5, "0.## EUR")', '2.5 EUR'],
    ['FORMAT("2024-03-07", "dd/mm/yyyy")', '07/03/2024'],
    ['FORMAT("2024-03-07T09:05:03Z", "yyyy-mm-dd hh:mm:ss")', '2024-03-07 09:05:03'],
    ['FORMAT("2024-03-07", "mmm yy")', 'Mar 24'],
    ['FORMAT("2024-03-07", "dd mmmm yyyy")', '07 March 2024'],
    ['FORMAT(1.5)', '1.5'],
    ['ABS(-2)', '2'],
    ['INT(2.7)', '2'],
    ['INT(-2.5)', '-3'],
    ['ISNUMERIC("1.5")', 'true'],
    ['ISNUMERIC("x")', 'false'],
    ['ISEMPTY("")', 'true'],
    ['ISEMPTY([])', 'true'],
    ['ISEMPTY("a")', 'false'],
    ['SPLIT("a,b,c", ",")[2]', 'c'],
    ['LEN(SPLIT("", ","))', '0'],
    ['JOIN(["a", "b"], "-")', 'a-b'],
    ['JOIN([1, 2])', '1, 2'],
    ['ARRAY(1, "two")', '1, two'],
    ['UBOUND([1, 2, 3])', '2'],
    // Characters, not UTF-16 units: an emoji is one, and never cut in half.
    ['LEN("a😀b")', '3'],
    ['LEFT("😀b", 1)', '😀'],
    ['RIGHT("a😀", 1)', '😀'],
    ['MID("a😀b🎉", 2, 2)', '😀b'],
    ['MID("a😀b🎉", 4)', '🎉'],
    ['INSTR("😀ab", "b")', '3'],
    ['INSTR(3, "😀b😀b", "b")', '4'],
    ['INSTR(5, "😀b😀b", "b")', '0'],
    ['"a😀b"[1]', '😀'],
    ['JOIN(SPLIT("a😀", ""), "|")', 'a|😀'],
    ['REPLACE("a😀", "", "-")', 'a-😀'],
  ])('%s', async (expr, expected) => {
    expect(await talk(`TALK ${expr}`)).toEqual([expected]);
  });

  it('NOW() and TODAY() are the current UTC time and day', async () => {
    const before = new Date().toISOString().slice(0, 10);
    const [now, today] = await talk('TALK NOW()\nTALK TODAY()');
    expect(now).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(Math.abs(Date.parse(now!) - Date.now())).toBeLessThan(60_000);
    expect([before, new Date().toISOString().slice(0, 10)]).toContain(today);
  });

  it("treats keywords and names case-insensitively, and skips ' and REM comments", async () => {
    expect(
      await talk(`rem a comment
Name = "Ana" ' the name
If NAME = "Ana" Then
  talk "Hi " + name
End If`),
    ).toEqual(['Hi Ana']);
  });

  it('says nothing for an empty TALK', async () => {
    expect(await talk('TALK ""\nTALK NULL\nTALK "x"')).toEqual(['x']);
  });

  it('changes list items in place of a copy', async () => {
    expect(await talk('a = [1, [2, 3]]\nb = a\na[1][0] = 9\na[2] = "new"\nTALK a\nTALK b')).toEqual([
      '1, 9, 3, new',
      '1, 2, 3',
    ]);
  });
});

describe('control flow', () => {
  it('IF / ELSE IF / ELSEIF / ELSE / END IF picks one branch', async () => {
    const source = (n: number) => `n = ${n}
IF n = 1 THEN
  TALK "one"
ELSE IF n = 2 THEN
  TALK "two"
ELSEIF n = 3 THEN
  TALK "three"
ELSE
  TALK "many"
END IF`;
    expect(await talk(source(1))).toEqual(['one']);
    expect(await talk(source(2))).toEqual(['two']);
    expect(await talk(source(3))).toEqual(['three']);
    expect(await talk(source(9))).toEqual(['many']);
  });

  it('one-line IF ... THEN ... ELSE', async () => {
    expect(await talk('IF 1 > 2 THEN TALK "yes" ELSE TALK "no"\nIF TRUE THEN TALK "only"')).toEqual([
      'no',
      'only',
    ]);
  });

  it('FOR ... TO ... STEP ... NEXT, up, down, and not at all', async () => {
    expect(await talk('s = ""\nFOR i = 1 TO 5 STEP 2\n  s = s + i\nNEXT i\nTALK s\nTALK i')).toEqual([
      '135',
      '7',
    ]);
    expect(await talk('s = ""\nFOR i = 3 TO 1 STEP -1\n  s = s + i\nNEXT\nTALK s')).toEqual(['321']);
    expect(await talk('s = "none"\nFOR i = 1 TO 0\n  s = "ran"\nNEXT\nTALK s')).toEqual(['none']);
  });

  it('FOR EACH ... IN ... NEXT, nested loops, EXIT FOR and EXIT WHILE', async () => {
    expect(
      await talk(`out = ""
FOR EACH c IN ["a", "b"]
  FOR i = 1 TO 3
    IF i = 3 THEN EXIT FOR
    out = out + c + i + " "
  NEXT
NEXT c
n = 0
WHILE TRUE
  n = n + 1
  IF n = 4 THEN EXIT WHILE
WEND
TALK out + n`),
    ).toEqual(['a1 a2 b1 b2 4']);
  });

  it('WHILE ... WEND and WHILE ... END WHILE', async () => {
    expect(
      await talk('n = 0\nWHILE n < 3\n  n = n + 1\nWEND\nWHILE n < 5\n  n = n + 1\nEND WHILE\nTALK n'),
    ).toEqual(['5']);
  });

  it('FUNCTION with RETURN (also recursive), SUB with EXIT SUB, CALL and plain calls', async () => {
    expect(
      await talk(`greeting = "Hi"
TALK Fact(5)
CALL Shout("a")
Shout("b")
Quiet
TALK "done"

FUNCTION Fact(n)
  IF n <= 1 THEN RETURN 1
  RETURN n * Fact(n - 1)
END FUNCTION

SUB Shout(what)
  TALK greeting + " " + UCASE(what)
  EXIT SUB
  TALK "never"
END SUB

SUB Quiet
END SUB`),
    ).toEqual(['120', 'Hi A', 'Hi B', 'done']);
  });

  it("a FUNCTION's own variables do not leak into the script", async () => {
    const h = await bot({
      'start.bas': 'x = F()\nTALK x\nTALK inner\nFUNCTION F()\n  inner = 1\n  RETURN 2\nEND FUNCTION',
    });
    expect((await h.start()).texts).toEqual(['Sorry, something went wrong on my side. Please try again.']);
    expect(h.logs.find((l) => l.event === 'dialog.runtime_error')).toMatchObject({
      at: 'start.bas:3',
      err: 'variable inner has no value yet (assign it first, or read a session variable with GET inner)',
    });
  });

  it('RUN runs another script with its own variables, then comes back; RETURN leaves it early', async () => {
    const h = await bot({
      'start.bas': 'x = "start"\nRUN "other.bas"\nRUN "other"\nTALK "back in " + x',
      'other.bas': 'TALK "in other, message=[" + message + "]"\nx = "other"\nRETURN\nTALK "never"',
    });
    expect((await h.start()).texts).toEqual([
      'in other, message=[]',
      'in other, message=[]',
      'back in start',
    ]);
  });

  it('END stops every script at once', async () => {
    const h = await bot({ 'start.bas': 'RUN "b.bas"\nTALK "never"', 'b.bas': 'TALK "b"\nEND\nTALK "never"' });
    expect((await h.start()).texts).toEqual(['b']);
    expect(h.state.dialog).toBeNull();
  });
});

describe('HEAR', () => {
  it('waits: the turn ends, the state is plain JSON, the next message resumes there with the locals', async () => {
    const h = await bot({
      'start.bas': 'count = 41\nTALK "Your name?"\nHEAR name\nTALK "Hi " + name + ", " + (count + 1)',
    });
    expect((await h.start()).texts).toEqual(['Your name?']);
    const saved = JSON.parse(JSON.stringify(h.state.dialog));
    expect(DialogStateSchema.safeParse(saved).success).toBe(true);
    expect(saved.frames[0].locals).toMatchObject({ count: 41 });
    expect(saved.waiting).toMatchObject({ target: 'name', type: null, tries: 0 });
    expect((await h.say('Ana')).texts).toEqual(['Hi Ana, 42']);
    expect(h.state.dialog).toBeNull();
  });

  it('x = HEAR and x = HEAR AS type are HEAR too', async () => {
    const h = await bot({ 'start.bas': 'a = HEAR\nb = HEAR AS NUMBER\nTALK a + "/" + (b + 1)' });
    await h.start();
    await h.say('first');
    expect((await h.say('2')).texts).toEqual(['first/3']);
  });

  it('the message that opened a session is not the answer to the question its greeting asked', async () => {
    const h = await bot(
      { 'start.bas': 'TALK "Name?"\nHEAR name\nTALK "Hi " + name' },
      { channel: 'whatsapp' },
    );
    expect((await h.say('hello')).texts).toEqual(['Name?']);
    expect((await h.say('Ana')).texts).toEqual(['Hi Ana']);
  });

  it.each([
    ['TEXT', '  some text  ', 'some text'],
    ['NUMBER', '42', '42'],
    ['NUMBER', '-3.5', '-3.5'],
    ['NUMBER', '3,5', '3.5'],
    ['NUMBER', '1,234.5', '1234.5'],
    ['INTEGER', '7', '7'],
    ['DATE', '2024-12-31', '2024-12-31'],
    ['DATE', '31/12/2024', '2024-12-31'],
    ['DATE', '1.2.2024', '2024-02-01'],
    ['EMAIL', 'ana@example.com', 'ana@example.com'],
    ['NAME', "  Ana-Maria   O'Neil ", "Ana-Maria O'Neil"],
    ['NAME', 'José', 'José'],
    ['BOOLEAN', 'Yes', 'true'],
    ['BOOLEAN', 'y', 'true'],
    ['BOOLEAN', 'no', 'false'],
    ['BOOLEAN', 'não', 'false'],
  ])('HEAR x AS %s accepts %j as %s', async (type, answer, stored) => {
    const h = await bot({ 'start.bas': `HEAR x AS ${type}\nTALK "got " + x` });
    await h.start();
    expect((await h.say(answer)).texts).toEqual([`got ${stored}`]);
  });

  it('HEAR x AS DATE understands today and tomorrow', async () => {
    const h = await bot({ 'start.bas': 'HEAR x AS DATE\nTALK x' });
    await h.start();
    const tomorrow = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    const before = tomorrow();
    const [got] = (await h.say('tomorrow')).texts;
    expect([before, tomorrow()]).toContain(got);
  });

  it.each([
    ['TEXT', '   ', 'Sorry, I did not get an answer. Please type it again.'],
    ['NUMBER', 'abc', 'Sorry, I need a number here, for example 42 or 3.5. Please try again.'],
    ['INTEGER', '7.5', 'Sorry, I need a whole number here, for example 7. Please try again.'],
    [
      'DATE',
      '2024-02-30',
      'Sorry, I need a date here, for example 2024-12-31 or 31/12/2024. Please try again.',
    ],
    ['DATE', 'soon', 'Sorry, I need a date here, for example 2024-12-31 or 31/12/2024. Please try again.'],
    [
      'EMAIL',
      'ana@example',
      'Sorry, that does not look like an email address (for example ana@example.com). Please try again.',
    ],
    ['NAME', 'R2D2', 'Sorry, I need a name here, written with letters. Please try again.'],
    ['NAME', 'A', 'Sorry, I need a name here, written with letters. Please try again.'],
    ['BOOLEAN', 'maybe', 'Sorry, please answer yes or no.'],
  ])('HEAR x AS %s refuses %j politely and asks again', async (type, answer, retry) => {
    const h = await bot({ 'start.bas': `HEAR x AS ${type}\nTALK "got " + x` });
    await h.start();
    expect((await h.say(answer)).texts).toEqual([retry]);
    expect((h.state.dialog as { waiting: { tries: number } }).waiting.tries).toBe(1);
  });

  it('HEAR x AS a list of choices: by text (any case) or by number; the choices are the suggestions', async () => {
    const h = await bot({ 'start.bas': 'TALK "Color?"\nHEAR c AS "Red", "Green"\nTALK "got " + c' });
    const asked = await h.start();
    expect(asked.replies).toEqual([{ text: 'Color?', suggestions: [{ text: 'Red' }, { text: 'Green' }] }]);
    const retry = await h.say('blue');
    expect(retry.replies).toEqual([
      { text: 'Sorry, please choose one of: Red, Green.', suggestions: [{ text: 'Red' }, { text: 'Green' }] },
    ]);
    expect((await h.say('  green ')).texts).toEqual(['got Green']);
    const again = await bot({
      'start.bas': 'colors = ["Red", "Green"]\nHEAR c AS (colors)\nTALK "got " + c',
    });
    await again.start();
    expect((await again.say('2')).texts).toEqual(['got Green']);
  });

  it('bounded tries: after the last invalid answer the variable is empty and the script goes on', async () => {
    const h = await bot(
      { 'start.bas': 'HEAR n AS NUMBER\nIF n = "" THEN\n  TALK "no number"\nELSE\n  TALK n\nEND IF' },
      { settings: { dialog: { maxHearTries: 2 } } },
    );
    await h.start();
    expect((await h.say('x')).texts).toEqual([
      'Sorry, I need a number here, for example 42 or 3.5. Please try again.',
    ]);
    const last = await h.say('y');
    expect(last.texts).toEqual(['no number']);
    expect(last.events).toContainEqual({
      type: 'dialog.hear_gave_up',
      data: { script: 'start.bas', variable: 'n', tries: 2 },
    });
    expect(h.state.dialog).toBeNull();
  });

  it('resumes inside loops, FUNCTIONs called mid-expression, and scripts run by RUN', async () => {
    const h = await bot({
      'start.bas': `total = 0
FOR i = 1 TO 2
  n = Ask("Number " + i + "?")
  total = total + VAL(n)
NEXT
TALK "Hello " + Ask("Name?") + "!"
RUN "more.bas"
TALK "total " + total

FUNCTION Ask(question)
  TALK question
  HEAR answer
  RETURN answer
END FUNCTION`,
      'more.bas': 'WHILE TRUE\n  HEAR w\n  IF w = "stop" THEN EXIT WHILE\n  TALK "more " + w\nWEND',
    });
    expect((await h.start()).texts).toEqual(['Number 1?']);
    expect((await h.say('5')).texts).toEqual(['Number 2?']);
    expect((await h.say('7')).texts).toEqual(['Name?']);
    // The waiting frames: start.bas (mid-expression, "Hello " on its stack) and Ask.
    const saved = h.state.dialog as { frames: { unit: string; stack: unknown[] }[] };
    expect(saved.frames.map((f) => f.unit)).toEqual(['', 'ASK']);
    expect(saved.frames[0]!.stack).toEqual(['Hello ']);
    expect((await h.say('Ana')).texts).toEqual(['Hello Ana!']);
    expect((await h.say('x')).texts).toEqual(['more x']);
    expect((await h.say('stop')).texts).toEqual(['total 12']);
  });

  it('a HEAR answered is gone; a message afterwards runs message.bas with the text in `message`', async () => {
    const h = await bot({
      'start.bas': 'HEAR x\nTALK "ok"',
      'message.bas': 'TALK "message.bas got " + message',
    });
    await h.start();
    expect((await h.say('a')).texts).toEqual(['ok']);
    expect((await h.say('b')).texts).toEqual(['message.bas got b']);
  });
});

describe('session variables and bot memory', () => {
  it('SET name = expr, SET "name", expr, name = GET "name", GET name, and SET x = NULL', async () => {
    const h = await bot({
      'start.bas': 'SET user_name = "Ana"\nSET "Email", "a@b.c"\nSET gone = 1\nSET gone = NULL',
      'message.bas': `GET user_name
e = GET "Email"
missing = GET nothing_here
TALK user_name + " " + e + " [" + missing + "]"`,
    });
    await h.start();
    expect(h.variables).toEqual({ user_name: 'Ana', Email: 'a@b.c' });
    expect((await h.say('x')).texts).toEqual(['Ana a@b.c []']);
  });

  it('session variables outlive the script; its own variables do not', async () => {
    const h = await bot({
      'start.bas': 'SET kept = "yes"\nlocal = "no"',
      'message.bas': 'TALK GET kept\nTALK local',
    });
    await h.start();
    expect((await h.say('x')).texts).toEqual(['Sorry, something went wrong on my side. Please try again.']);
    expect(h.logs.find((l) => l.event === 'dialog.runtime_error')).toMatchObject({ at: 'message.bas:2' });
  });

  it('reads variables set by TypeScript code and keeps their JSON', async () => {
    const h = await bot({ 'message.bas': 'p = GET "profile"\nTALK p["city"]\nSET "copy", p' });
    h.snapshot.state.variables.profile = { city: 'Lisbon', tags: ['a'] };
    h.snapshot.session.lastSeq = 1;
    expect((await h.say('x')).texts).toEqual(['Lisbon']);
    expect(h.variables.copy).toEqual({ city: 'Lisbon', tags: ['a'] });
  });

  it('SET BOT MEMORY / GET BOT MEMORY: shared by every session of the bot, read-your-writes in a turn', async () => {
    const h = await bot({
      'start.bas': `n = GET BOT MEMORY "visits"
SET BOT MEMORY "visits", n + 1
TALK "visit " + GET BOT MEMORY "visits"`,
    });
    expect((await h.start()).texts).toEqual(['visit 1']);
    const other = await h.sibling();
    expect((await other.start()).texts).toEqual(['visit 2']);
    expect(h.memory.get('visits')).toBe(2);
  });

  it('the greeting remembers a name across sessions through bot memory keyed by user id', async () => {
    const scripts = {
      'start.bas': `user = GET SESSION "user_id"
name = GET BOT MEMORY "name_of_" + user
IF name <> "" THEN
  TALK "Welcome back, " + name
ELSE
  TALK "Name?"
  HEAR name AS NAME
  SET BOT MEMORY "name_of_" + user, name
  TALK "Hi " + name
END IF`,
    };
    const first = await bot(scripts, { userId: 'user-1' });
    await first.start();
    expect((await first.say('Ana')).texts).toEqual(['Hi Ana']);
    const second = await first.sibling({ userId: 'user-1' });
    expect((await second.start()).texts).toEqual(['Welcome back, Ana']);
    const stranger = await first.sibling({ userId: 'user-2' });
    expect((await stranger.start()).texts).toEqual(['Name?']);
  });

  it('predefined names: session_id, user_id and channel, unless the script sets its own', async () => {
    const h = await bot(
      { 'start.bas': 'TALK channel\nTALK user_id\nTALK session_id\nchannel = "mine"\nTALK channel' },
      {
        channel: 'teams',
        userId: 'u-9',
      },
    );
    const texts = (await h.start()).texts;
    expect(texts).toEqual(['teams', 'u-9', h.snapshot.session.id, 'mine']);
  });
});

describe('GET SESSION', () => {
  it('reads the channel, user, auth level, ids, counts and the previous interaction', async () => {
    const h = await bot(
      {
        // GET takes everything up to a comparison: parentheses end it sooner.
        'start.bas': 'TALK "[" + (GET SESSION "last_interaction") + "]"',
        'message.bas': `TALK GET SESSION "channel"
TALK GET SESSION "user_id"
TALK GET SESSION "user_name"
TALK GET SESSION "auth_level"
TALK GET SESSION "session.id"
TALK GET "session.id"
TALK GET SESSION "session.message_count"
TALK GET "session.message_count"
TALK GET SESSION "bot"
TALK GET SESSION "last_interaction"
TALK GET SESSION "session.created_at"`,
      },
      { channel: 'email', userId: 'user-7' },
    );
    expect((await h.start()).texts).toEqual(['[]']);
    const previous = h.snapshot.session.lastActivityAt;
    const texts = (await h.say('hi')).texts;
    expect(texts).toEqual([
      'email',
      'user-7',
      'Tester',
      'anonymous',
      h.snapshot.session.id,
      h.snapshot.session.id,
      '1',
      '1',
      'test',
      previous,
      h.snapshot.session.createdAt,
    ]);
  });

  it('user_id is empty on channels that do not know the person', async () => {
    expect(await talk('IF GET SESSION "user_id" = "" THEN TALK "anonymous"')).toEqual(['anonymous']);
  });
});

describe('context, knowledge bases, tools, suggestions, logs', () => {
  it('SET CONTEXT / CLEAR CONTEXT, USE KB / CLEAR KB, USE TOOL / CLEAR TOOLS change the session state', async () => {
    const h = await bot({
      'start.bas': `SET CONTEXT "profile" AS "Premium since " + 2020
SET CONTEXT "drop" AS "x"
CLEAR CONTEXT "drop"
USE KB "policies"
USE KB "products"
USE KB "policies"
CLEAR KB "products"
USE TOOL "weather"
USE TOOL "calendar"
CLEAR TOOL "calendar"`,
      'message.bas': 'CLEAR CONTEXT\nCLEAR KB ALL\nCLEAR TOOLS\nUSE KB "a"\nUSE KB "b"\nCLEAR KB',
    });
    await h.start();
    expect(h.state.context).toEqual({ profile: 'Premium since 2020' });
    expect(h.state.kbs).toEqual(['policies']);
    expect(h.state.tools).toEqual(['weather']);
    await h.say('x');
    expect(h.state.context).toEqual({});
    expect(h.state.kbs).toEqual([]);
    expect(h.state.tools).toEqual([]);
  });

  it("ADD SUGGESTION / CLEAR SUGGESTIONS: the session's suggestions ride on each turn's last reply", async () => {
    const h = await bot({
      'start.bas': `TALK "first"
ADD SUGGESTION "Help" AS "help"
ADD SUGGESTION "Call us"
ADD SUGGESTION "Help" AS "menu"
TALK "second"`,
      'message.bas': 'IF message = "clear" THEN CLEAR SUGGESTIONS\nTALK "ok"',
    });
    const suggestions = [{ text: 'Help', value: 'menu' }, { text: 'Call us' }];
    expect((await h.start()).replies).toEqual([{ text: 'first' }, { text: 'second', suggestions }]);
    expect(h.state.suggestions).toEqual(suggestions);
    expect((await h.say('x')).replies).toEqual([{ text: 'ok', suggestions }]);
    expect((await h.say('clear')).replies).toEqual([{ text: 'ok' }]);
  });

  it('LOG SESSION records a session event; LOG writes a log line', async () => {
    const h = await bot({
      'start.bas': 'LOG SESSION "milestone", "order_completed"\nLOG SESSION "plain"\nLOG "note " + 1',
    });
    const { events } = await h.start();
    expect(events).toEqual([
      { type: 'milestone', data: { value: 'order_completed' } },
      { type: 'plain', data: { value: null } },
      { type: 'log', data: { message: 'note 1' } },
    ]);
    expect(h.logs.find((l) => l.event === 'dialog.log')).toMatchObject({
      script: 'start.bas',
      line: 3,
      message: 'note 1',
    });
  });

  it('SAVE SESSION STATE / RESTORE SESSION STATE carry variables, context, KBs, tools and suggestions', async () => {
    const h = await bot(
      {
        'start.bas': `SET colour = "green"
SET CONTEXT "c" AS "v"
USE KB "kb"
USE TOOL "t"
ADD SUGGESTION "S"
state = SAVE SESSION STATE
SET BOT MEMORY "saved_" + user_id, state`,
      },
      { userId: 'u1' },
    );
    await h.start();
    const other = await h.sibling({ userId: 'u1' });
    await other.write(
      'start.bas',
      'RESTORE SESSION STATE GET BOT MEMORY "saved_" + user_id\nTALK GET colour',
    );
    expect((await other.start()).texts).toEqual(['green']);
    expect(other.state).toMatchObject({
      variables: { colour: 'green' },
      context: { c: 'v' },
      kbs: ['kb'],
      tools: ['t'],
      suggestions: [{ text: 'S' }],
    });
  });
});

describe('ON SESSION END', () => {
  it('runs the blocks of start.bas, message.bas, then the others by name, and drops a waiting dialog', async () => {
    const h = await bot({
      'start.bas': 'HEAR x\nON SESSION END\n  LOG SESSION "end", "start"\n  TALK "bye"\nEND ON',
      'message.bas': 'ON SESSION END\n  LOG SESSION "end", "message"\nEND ON',
      'b.bas': 'ON SESSION END\n  LOG SESSION "end", "b"\nEND ON',
      'a.bas': 'ON SESSION END\n  LOG SESSION "end", "a " + GET SESSION "channel"\nEND ON',
    });
    await h.start();
    expect(h.state.dialog).not.toBeNull();
    const ended = await h.end();
    expect(ended.events.map((e) => e.data)).toEqual([
      { value: 'start' },
      { value: 'message' },
      { value: 'a api' },
      { value: 'b' },
    ]);
    expect(ended.texts).toEqual(['bye']);
    expect(h.state.dialog).toBeNull();
  });
});

describe('LLM and the fallback', () => {
  it('without an LLM, `x = LLM "..."` fails with a clear error and the apology', async () => {
    const h = await bot({ 'start.bas': 'answer = LLM "hello"\nTALK answer' });
    expect((await h.start()).texts).toEqual(['Sorry, something went wrong on my side. Please try again.']);
    expect(h.logs.find((l) => l.event === 'dialog.runtime_error')).toMatchObject({
      at: 'start.bas:1',
      err: 'no LLM is configured for this bot',
    });
  });

  it('an injected LLM gets the prompt and the context the script has set so far', async () => {
    const seen: unknown[] = [];
    const h = await bot(
      {
        'start.bas':
          'SET CONTEXT "who" AS "Ana"\nUSE KB "docs"\nanswer = LLM "Say hi to " + "her"\nTALK answer',
      },
      {
        services: {
          llm: async (prompt, ctx) => {
            seen.push({ prompt, context: { ...ctx.state.context }, kbs: [...ctx.state.kbs] });
            return `LLM says hi (${ctx.state.context.who})`;
          },
        },
      },
    );
    expect((await h.start()).texts).toEqual(['LLM says hi (Ana)']);
    expect(seen).toEqual([{ prompt: 'Say hi to her', context: { who: 'Ana' }, kbs: ['docs'] }]);
  });

  it("without message.bas a message gets the fallback: the bot's defaultReply, with the suggestions", async () => {
    const h = await bot(
      { 'start.bas': 'ADD SUGGESTION "Help"' },
      { settings: { defaultReply: 'No script for that.' } },
    );
    await h.start();
    expect((await h.say('x')).replies).toEqual([
      { text: 'No script for that.', suggestions: [{ text: 'Help' }] },
    ]);
  });

  it('the fallback can be replaced (the LLM, in a later issue)', async () => {
    const h = await bot(
      { 'start.bas': 'TALK "hi"' },
      { services: { fallback: (ctx) => ctx.talk(`fallback heard ${ctx.text}`) } },
    );
    await h.start();
    expect((await h.say('x')).texts).toEqual(['fallback heard x']);
  });

  it('without start.bas a session starts with the greeting of bot.json', async () => {
    const h = await bot({ 'message.bas': 'TALK message' }, { settings: { greeting: 'Howdy' } });
    expect((await h.start()).texts).toEqual(['Howdy']);
  });
});

describe("variable names and record keys never reach JavaScript's object prototypes", () => {
  const errorsOf = (h: DialogHarness) =>
    h.logs.filter((l) => l.event === 'dialog.runtime_error').map((l) => l.err as string);

  it.each(['constructor', '__proto__'])(
    '%s has no value until the script gives it one, as a script variable and as a session variable',
    async (name) => {
      const h = await bot({ 'start.bas': `TALK ${name}` });
      await h.start();
      expect(errorsOf(h)).toEqual([
        `variable ${name} has no value yet (assign it first, or read a session variable with GET ${name})`,
      ]);
      expect(await talk(`x = GET ${name}\nTALK "[" + x + "]"`)).toEqual(['[]']);
      // Names in quotes keep their case: toString and hasOwnProperty are no session variables either.
      expect(await talk('a = GET "toString"\nb = GET "hasOwnProperty"\nTALK "[" + a + b + "]"')).toEqual([
        '[]',
      ]);
      expect(await talk(`${name} = "mine"\nTALK ${name}`)).toEqual(['mine']);
    },
  );

  it('a variable named __proto__ is a variable: it cannot lend its items to the others', async () => {
    expect(await talk('__proto__ = ["a", "b"]\nTALK __proto__')).toEqual(['a, b']);
    const h = await bot({ 'start.bas': '__proto__ = ["a"]\nTALK length' });
    await h.start();
    expect(errorsOf(h)).toEqual([
      'variable length has no value yet (assign it first, or read a session variable with GET length)',
    ]);
  });

  it('SET __proto__ and SET constructor are session variables like any other, kept with the session', async () => {
    const h = await bot({
      'start.bas':
        'SET __proto__ = "p"\nSET constructor = "c"\na = GET __proto__\nb = GET constructor\nTALK a + b',
    });
    expect((await h.start()).texts).toEqual(['pc']);
    expect(Object.entries(h.variables)).toEqual([
      ['__proto__', 'p'],
      ['constructor', 'c'],
    ]);
  });

  it("a record's items are its own keys: constructor and __proto__ from JSON are plain items or nothing", async () => {
    const memory = new Map<string, unknown>([
      ['plain', { name: 'Ada' }],
      ['forged', JSON.parse('{"__proto__": {"admin": true}, "name": "Eve"}')],
    ]);
    const h = await bot(
      {
        'start.bas': [
          'p = GET BOT MEMORY "plain"',
          'f = GET BOT MEMORY "forged"',
          'TALK "[" + p["constructor"] + "][" + p["toString"] + "][" + p["name"] + "]"',
          'TALK "[" + f["admin"] + "][" + f["name"] + "]"',
          'p["constructor"] = "set"',
          'TALK p["constructor"]',
        ].join('\n'),
      },
      { memory },
    );
    expect((await h.start()).texts).toEqual(['[][][Ada]', '[][Eve]', 'set']);
    expect(errorsOf(h)).toEqual([]);
  });

  it('HEAR x AS DATE asks again for "constructor" and "__proto__" instead of failing', async () => {
    for (const answer of ['constructor', '__proto__', 'toString']) {
      const h = await bot({ 'start.bas': 'HEAR x AS DATE\nTALK x' });
      await h.start();
      expect((await h.say(answer)).texts).toEqual([
        'Sorry, I need a date here, for example 2024-12-31 or 31/12/2024. Please try again.',
      ]);
      expect(errorsOf(h)).toEqual([]);
      expect((await h.say('2024-12-31')).texts).toEqual(['2024-12-31']);
    }
  });
});
