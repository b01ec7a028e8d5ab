import { afterEach, describe, expect, it } from 'vitest';
import { DialogHarness } from '../helpers/dialog.ts';

const APOLOGY = 'Sorry, something went wrong on my side. Please try again.';
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

/** Runs start.bas and returns the one runtime error it logged. */
async function failure(source: string, settings?: Record<string, unknown>) {
  const h = await bot({ 'start.bas': source }, { settings });
  const result = await h.start();
  const logged = h.logs.filter((l) => l.event === 'dialog.runtime_error');
  expect(logged).toHaveLength(1);
  expect(result.texts).toEqual([APOLOGY]);
  return { h, result, logged: logged[0]! };
}

describe('runtime errors: logged with file:line, answered with the apology, and the session goes on', () => {
  it.each([
    [
      'TALK nope',
      1,
      'variable nope has no value yet (assign it first, or read a session variable with GET nope)',
    ],
    ['x = 1\nTALK 1 / 0', 2, 'division by zero'],
    ['TALK 7 \\ 0', 1, 'division by zero'],
    ['TALK 7 MOD 0', 1, 'division by zero'],
    ['TALK 10 ^ 400', 1, 'the result of this calculation is too large'],
    ['TALK "abc" * 2', 1, 'expected a number, got "abc"'],
    ['TALK LEFT("abc", 1.5)', 1, 'expected a whole number, got 1.5'],
    ['TALK LEFT("abc", -1)', 1, 'LEFT cannot take a negative count'],
    ['TALK RIGHT("abc", -1)', 1, 'RIGHT cannot take a negative count'],
    ['TALK [1] < 2', 1, 'cannot compare a list of 1 with 2'],
    ['TALK TRUE + 1', 1, 'cannot add true and 1'],
    ['SET "", 1', 1, 'SET needs a name, got ""'],
    ['SET BOT MEMORY "", 1', 1, 'SET BOT MEMORY needs a name, got ""'],
    ['x = GET BOT MEMORY NULL', 1, 'GET BOT MEMORY needs a name, got an empty value'],
    ['ADD SUGGESTION ""', 1, 'ADD SUGGESTION needs a name, got ""'],
    ['name = "nope"\nRUN name', 2, 'RUN: this bot has no script nope.bas'],
    ['name = "../../secrets"\nRUN name', 2, 'RUN: this bot has no script ../../secrets.bas'],
    ['HEAR x AS []', 1, 'HEAR AS needs at least one choice'],
    [
      'k = "shoe"\nx = GET SESSION k',
      2,
      'GET SESSION knows no "shoe": use one of channel, user_id, user_name, auth_level, last_interaction, bot, id, session_id, session.id, message_count, session.message_count, created_at, transfer_end_reason, session.created_at, files',
    ],
    ['RESTORE SESSION STATE 5', 1, 'RESTORE SESSION STATE needs a value made by SAVE SESSION STATE'],
    [
      'RESTORE SESSION STATE "{not json"',
      1,
      'RESTORE SESSION STATE needs a value made by SAVE SESSION STATE',
    ],
    ['FOR i = 1 TO 3 STEP 0\nNEXT', 1, 'FOR with STEP 0 would never end'],
    ['FOR i = "a" TO 3\nNEXT', 1, 'expected a number as the FOR counter, got "a"'],
    ['FOR EACH x IN 5\nNEXT', 1, 'FOR EACH needs a list, got 5'],
    ['a = [1, 2, 3]\nTALK a[5]', 2, 'index 5 is outside the list (0 to 2)'],
    ['a = []\nTALK a[0]', 2, 'index 0 is outside the list: it is empty'],
    ['a = [1]\na[3] = 1', 2, 'index 3 is outside the list (0 to 1)'],
    ['x = 5\nTALK x[0]', 2, 'cannot take an item of 5'],
    ['x = 5\nx[0] = 1', 2, 'x is 5, not a list'],
    ['TALK INSTR(0, "a", "b")', 1, 'INSTR starts at position 1 or later'],
    ['TALK MID("abc", 0)', 1, 'MID starts at position 1 or later'],
    ['TALK MID("abc", 1, -1)', 1, 'MID cannot take a negative length'],
    ['TALK FORMAT("soon", "0.00")', 1, 'FORMAT needs a number or a date, got "soon"'],
    ['TALK JOIN("a")', 1, 'JOIN needs a list, got "a"'],
    ['TALK UBOUND(3)', 1, 'UBOUND needs a list, got 3'],
    ['x = LLM "hi"', 1, 'no LLM is configured for this bot'],
    [
      'x = F(1)\nFUNCTION F(n)\n  RETURN F(n + 1)\nEND FUNCTION',
      3,
      'calls nested deeper than 64: a FUNCTION, SUB or RUN that never ends?',
    ],
  ])('%j', async (source, line, message) => {
    const { logged, result } = await failure(source);
    expect(logged).toMatchObject({ at: `start.bas:${line}`, script: 'start.bas', line, err: message });
    expect(result.events).toContainEqual({
      type: 'dialog.error',
      data: { script: 'start.bas', line, column: expect.any(Number), message },
    });
  });

  it('keeps nothing the failing run did, and the next message is handled as usual', async () => {
    const h = await bot({
      'start.bas': 'TALK "Name?"\nHEAR name',
      'message.bas': 'TALK "message.bas: " + message',
      'other.bas': '',
    });
    await h.start();
    // The new start.bas still has the HEAR it waits at: it resumes there, then fails.
    await h.write(
      'start.bas',
      'TALK "Name?"\nHEAR name\nSET kept = name\nSET BOT MEMORY "m", 1\nTALK "thanks"\nx = 1 / 0',
    );
    const failed = await h.say('Ana');
    expect(failed.texts).toEqual([APOLOGY]);
    expect(h.variables).toEqual({});
    expect(h.memory.has('m')).toBe(false);
    expect(h.state.dialog).toBeNull();
    expect((await h.say('again')).texts).toEqual(['message.bas: again']);
  });

  it('uses the apology of bot.json', async () => {
    const h = await bot({ 'start.bas': 'TALK 1 / 0' }, { settings: { apology: 'Oops, my bad.' } });
    expect((await h.start()).texts).toEqual(['Oops, my bad.']);
  });

  it('the error of a FUNCTION names its own line', async () => {
    const { logged } = await failure('TALK F()\n\nFUNCTION F()\n  RETURN nope\nEND FUNCTION');
    expect(logged).toMatchObject({ at: 'start.bas:4' });
  });

  it('the error of a script run by RUN names that script', async () => {
    const h = await bot({ 'start.bas': 'RUN "b.bas"', 'b.bas': 'TALK "b"\nTALK 1 / 0' });
    expect((await h.start()).texts).toEqual([APOLOGY]);
    expect(h.logs.find((l) => l.event === 'dialog.runtime_error')).toMatchObject({
      at: 'b.bas:2',
      script: 'b.bas',
    });
  });

  it('HEAR cannot wait while the session is ending, even from a FUNCTION', async () => {
    const h = await bot({
      'start.bas': 'ON SESSION END\n  x = Ask()\nEND ON\nFUNCTION Ask()\n  HEAR a\n  RETURN a\nEND FUNCTION',
    });
    await h.start();
    const ended = await h.end();
    expect(ended.texts).toEqual([APOLOGY]);
    expect(h.logs.find((l) => l.event === 'dialog.runtime_error')).toMatchObject({
      at: 'start.bas:5',
      err: 'HEAR cannot wait for an answer while the session is ending',
    });
  });
});

describe('limits from the bot settings', () => {
  it('a step budget per turn stops a runaway loop', async () => {
    const { logged } = await failure('n = 0\nWHILE TRUE\n  n = n + 1\nWEND', {
      dialog: { maxStepsPerTurn: 1000 },
    });
    expect(logged).toMatchObject({
      err: 'stopped after 1000 steps in one turn: a loop that never waits for an answer?',
      script: 'start.bas',
    });
    expect([2, 3]).toContain(logged.line);
  });

  it('the default step budget is generous for real work and still stops an endless loop', async () => {
    const ok = await bot({ 'start.bas': 's = 0\nFOR i = 1 TO 5000\n  s = s + i\nNEXT\nTALK s' });
    expect((await ok.start()).texts).toEqual(['12502500']);
    const { logged } = await failure('WHILE TRUE\nWEND');
    expect(logged.err).toBe('stopped after 100000 steps in one turn: a loop that never waits for an answer?');
  });

  it('a session holds at most maxVariables session variables (default 100)', async () => {
    const { logged } = await failure('SET a = 1\nSET b = 2\nSET a = 3\nSET c = 3', {
      dialog: { maxVariables: 2 },
    });
    expect(logged).toMatchObject({
      at: 'start.bas:4',
      err: 'a session may hold at most 2 variables; c would be one more',
    });
    const { logged: byDefault } = await failure('FOR i = 1 TO 101\n  SET "v" + i, i\nNEXT');
    expect(byDefault.err).toBe('a session may hold at most 100 variables; v101 would be one more');
  });

  it('session variables take at most maxVariableBytes (default 1 MB)', async () => {
    const { logged } = await failure(
      'SET small = "x"\ns = "x"\nFOR i = 1 TO 9\n  s = s & s\nNEXT\ns = s & LEFT(s, 500)\nSET big = s',
      { dialog: { maxVariableBytes: 1024 } },
    );
    expect(logged).toMatchObject({
      at: 'start.bas:7',
      err: 'session variables would take more than the limit of 1024 bytes',
    });
    const h = await bot({ 'start.bas': 's = "x"\nFOR i = 1 TO 20\n  s = s & s\nNEXT\nSET big = s' });
    await h.start();
    expect(h.logs.find((l) => l.event === 'dialog.runtime_error')).toMatchObject({
      err: 'session variables would take more than the limit of 1048576 bytes',
    });
  });

  it('a text cannot grow past maxVariableBytes, nor a list past 10,000 items', async () => {
    const { logged } = await failure('s = "x"\nWHILE TRUE\n  s = s + s\nWEND', {
      dialog: { maxVariableBytes: 1024 },
    });
    expect(logged).toMatchObject({ at: 'start.bas:3', err: 'a text grew beyond the limit of 1024 bytes' });
    const { logged: list } = await failure(
      's = ","\nFOR i = 1 TO 14\n  s = s + s\nNEXT\nparts = SPLIT(s, ",")',
    );
    expect(list).toMatchObject({ at: 'start.bas:5', err: 'a list cannot hold more than 10000 items' });
  });

  it("a waiting script's own variables take at most maxVariableBytes too", async () => {
    const { logged } = await failure(
      'a = []\nFOR i = 1 TO 40\n  a = a + ["0123456789012345678901234567890123456789"]\nNEXT\nHEAR x',
      { dialog: { maxVariableBytes: 1024 } },
    );
    expect(logged.err).toMatch(/^the script's variables take \d+ bytes, more than the limit of 1024$/);
    expect(logged.line).toBe(5);
  });

  it('RESTORE SESSION STATE respects the limits', async () => {
    const { logged } = await failure('RESTORE SESSION STATE "{""variables"": {""a"": 1, ""b"": 2}}"', {
      dialog: { maxVariables: 1 },
    });
    expect(logged.err).toBe('the saved state holds 2 variables, more than the limit of 1');
    const long = 'y'.repeat(1100);
    const { logged: bytes } = await failure(`RESTORE SESSION STATE "{""variables"": {""a"": ""${long}""}}"`, {
      dialog: { maxVariableBytes: 1024 },
    });
    expect(bytes.err).toBe("the saved state's variables take more than 1024 bytes");
  });

  it('SET CONTEXT entries are limited by maxContextEntries (default 100), also across messages', async () => {
    const h = await bot(
      { 'message.bas': 'SET CONTEXT "note " + message AS message\nTALK "noted"' },
      { settings: { dialog: { maxContextEntries: 2 } } },
    );
    expect((await h.say('a')).texts).toEqual(['Hello! How can I help?', 'noted']);
    expect((await h.say('b')).texts).toEqual(['noted']);
    expect((await h.say('a')).texts).toEqual(['noted']);
    expect((await h.say('c')).texts).toEqual([APOLOGY]);
    expect(h.logs.find((l) => l.event === 'dialog.runtime_error')).toMatchObject({
      at: 'message.bas:1',
      err: 'SET CONTEXT "note c": a session may hold at most 2 context entries; CLEAR CONTEXT one first',
    });
    expect(Object.keys(h.state.context)).toEqual(['note a', 'note b']);
    const { logged } = await failure('FOR i = 1 TO 101\n  SET CONTEXT "c" + i AS i\nNEXT');
    expect(logged.err).toBe(
      'SET CONTEXT "c101": a session may hold at most 100 context entries; CLEAR CONTEXT one first',
    );
  });

  it("the session's context takes at most maxVariableBytes, apart from its variables", async () => {
    const { logged } = await failure(
      `SET big = "${'v'.repeat(900)}"\nSET CONTEXT "a" AS "${'x'.repeat(600)}"\nSET CONTEXT "a" AS "${'x'.repeat(900)}"\nSET CONTEXT "b" AS "${'y'.repeat(200)}"`,
      { dialog: { maxVariableBytes: 1024 } },
    );
    expect(logged).toMatchObject({
      at: 'start.bas:4',
      err: 'SET CONTEXT "b": the session\'s context would take more than the limit of 1024 bytes',
    });
  });

  it('ADD SUGGESTION is limited by maxSuggestions (default 50) and maxVariableBytes', async () => {
    const { logged } = await failure(
      'ADD SUGGESTION "a"\nADD SUGGESTION "b"\nADD SUGGESTION "a" AS "x"\nADD SUGGESTION "c"',
      {
        dialog: { maxSuggestions: 2 },
      },
    );
    expect(logged).toMatchObject({
      at: 'start.bas:4',
      err: 'ADD SUGGESTION "c": a session may hold at most 2 suggestions; CLEAR SUGGESTIONS first',
    });
    const { logged: byDefault } = await failure('FOR i = 1 TO 51\n  ADD SUGGESTION "s" + i\nNEXT');
    expect(byDefault.err).toBe(
      'ADD SUGGESTION "s51": a session may hold at most 50 suggestions; CLEAR SUGGESTIONS first',
    );
    const { logged: bytes } = await failure(
      `ADD SUGGESTION "a" AS "${'x'.repeat(600)}"\nADD SUGGESTION "b" AS "${'y'.repeat(600)}"`,
      { dialog: { maxVariableBytes: 1024 } },
    );
    expect(bytes).toMatchObject({
      at: 'start.bas:2',
      err: 'ADD SUGGESTION "b": the session\'s suggestions would take more than the limit of 1024 bytes',
    });
  });

  it('USE TOOL names are limited by maxTools (default 128) and maxVariableBytes', async () => {
    const { logged } = await failure('USE TOOL "a"\nUSE TOOL "b"\nUSE TOOL "a"\nUSE TOOL "c"', {
      dialog: { maxTools: 2 },
    });
    expect(logged).toMatchObject({
      at: 'start.bas:4',
      err: 'USE TOOL "c": a session may hold at most 2 tools; CLEAR TOOL one first',
    });
    const { logged: byDefault } = await failure('FOR i = 1 TO 129\n  USE TOOL "t" + i\nNEXT');
    expect(byDefault.err).toBe('USE TOOL "t129": a session may hold at most 128 tools; CLEAR TOOL one first');
    const { logged: bytes } = await failure(`USE TOOL "${'a'.repeat(600)}"\nUSE TOOL "${'b'.repeat(600)}"`, {
      dialog: { maxVariableBytes: 1024 },
    });
    expect(bytes).toMatchObject({
      at: 'start.bas:2',
      err: `USE TOOL "${'b'.repeat(600)}": the session's tools would take more than the limit of 1024 bytes`,
    });
  });

  it("RESTORE SESSION STATE respects the context's, suggestions', tools' and knowledge bases' limits", async () => {
    const restore = (json: string) => `RESTORE SESSION STATE "${json.replaceAll('"', '""')}"`;
    const cases: [string, Record<string, unknown>, string][] = [
      [
        '{"context": {"a": "1", "b": "2"}}',
        { dialog: { maxContextEntries: 1 } },
        'the saved state holds 2 context entries, more than the limit of 1',
      ],
      [
        '{"suggestions": [{"text": "a"}, {"text": "b"}]}',
        { dialog: { maxSuggestions: 1 } },
        'the saved state holds 2 suggestions, more than the limit of 1',
      ],
      [
        '{"tools": ["a", "b"]}',
        { dialog: { maxTools: 1 } },
        'the saved state holds 2 tools, more than the limit of 1',
      ],
      [
        '{"kbs": ["a", "b"]}',
        { sessions: { maxKnowledgeBases: 1 } },
        'the saved state holds 2 knowledge bases, more than the limit of 1',
      ],
      [
        `{"context": {"a": "${'x'.repeat(1100)}"}}`,
        { dialog: { maxVariableBytes: 1024 } },
        "the saved state's context takes more than 1024 bytes",
      ],
      [
        `{"tools": ["${'x'.repeat(1100)}"]}`,
        { dialog: { maxVariableBytes: 1024 } },
        "the saved state's tools take more than 1024 bytes",
      ],
      [
        `{"suggestions": [{"text": "${'x'.repeat(1100)}"}]}`,
        { dialog: { maxVariableBytes: 1024 } },
        "the saved state's suggestions take more than 1024 bytes",
      ],
    ];
    for (const [json, settings, err] of cases) {
      const { logged } = await failure(restore(json), settings);
      expect(logged.err).toBe(err);
    }
  });

  it('the call depth is maxCallDepth', async () => {
    const { logged } = await failure('x = F(1)\nFUNCTION F(n)\n  RETURN F(n + 1)\nEND FUNCTION', {
      dialog: { maxCallDepth: 5 },
    });
    expect(logged.err).toBe('calls nested deeper than 5: a FUNCTION, SUB or RUN that never ends?');
  });
});
