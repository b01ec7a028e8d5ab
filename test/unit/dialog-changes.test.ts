import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DialogHarness } from '../helpers/dialog.ts';

const harnesses: DialogHarness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.cleanup();
});

async function bot(scripts: Record<string, string>) {
  const h = await DialogHarness.create(scripts);
  harnesses.push(h);
  return h;
}

const FORM = `TALK "Name?"
HEAR name
TALK "Age?"
HEAR age AS INTEGER
TALK name + " is " + age`;

describe('a script changes while sessions wait in it', () => {
  it('resumes at the same HEAR when only other lines changed, with its variables', async () => {
    const h = await bot({ 'start.bas': FORM });
    await h.start();
    await h.say('Ana');
    await h.write(
      'start.bas',
      `' a new first line
TALK "Welcome to the new form. Name?"
HEAR name
x = 1
TALK "How old are you?"
HEAR age AS INTEGER
TALK "Thanks: " + name + " is " + age`,
    );
    expect((await h.say('30')).texts).toEqual(['Thanks: Ana is 30']);
    expect(h.logs.some((l) => l.event === 'dialog.resumed_changed_script')).toBe(true);
    expect(h.logs.some((l) => l.event === 'dialog.script_restarted')).toBe(false);
  });

  it('finds the position inside blocks and FUNCTIONs that moved', async () => {
    const h = await bot({
      'start.bas':
        'FOR i = 1 TO 2\n  x = Ask(i)\nNEXT\nTALK "done " + i\nFUNCTION Ask(n)\n  HEAR a\n  RETURN a\nEND FUNCTION',
    });
    await h.start();
    await h.say('one');
    await h.write(
      'start.bas',
      'TALK "v2"\nFOR i = 1 TO 2\n  TALK "asking"\n  x = Ask(i)\nNEXT\nTALK "finished " + i\n\nFUNCTION Ask(n)\n  TALK "?"\n  HEAR a\n  RETURN a\nEND FUNCTION',
    );
    expect((await h.say('two')).texts).toEqual(['finished 3']);
  });

  it('restarts the script for the session, and logs it, when the statement it waited at is gone', async () => {
    const h = await bot({ 'start.bas': FORM, 'message.bas': 'TALK "message.bas"' });
    await h.start();
    await h.say('Ana');
    await h.write('start.bas', 'TALK "New form. Your email?"\nHEAR email AS EMAIL\nTALK "ok " + email');
    const restarted = await h.say('31');
    expect(restarted.texts).toEqual(['New form. Your email?']);
    expect(restarted.events).toContainEqual({
      type: 'dialog.restarted',
      data: {
        script: 'start.bas',
        reason: 'start.bas changed and the statement it waited at (HEAR AGE AS INTEGER #0) is gone',
      },
    });
    expect(h.logs.find((l) => l.event === 'dialog.script_restarted')).toMatchObject({
      level: 40,
      script: 'start.bas',
    });
    expect((await h.say('a@b.co')).texts).toEqual(['ok a@b.co']);
  });

  it('restarts when the same statement now sits in a different block', async () => {
    const h = await bot({ 'start.bas': 'HEAR a\nTALK a' });
    await h.start();
    await h.write('start.bas', 'IF TRUE THEN\n  HEAR a\nEND IF\nTALK "v2 " + a');
    expect((await h.say('x')).texts).toEqual([]);
    expect(h.logs.some((l) => l.event === 'dialog.script_restarted')).toBe(true);
    expect((await h.say('y')).texts).toEqual(['v2 y']);
  });

  it('restarts message.bas with the message that started it', async () => {
    const h = await bot({ 'message.bas': 'TALK "started by " + message\nHEAR x\nTALK "got " + x' });
    await h.start();
    expect((await h.say('first')).texts).toEqual(['started by first']);
    await h.write('message.bas', 'TALK "v2 started by " + message\nHEAR y AS NUMBER\nTALK "got " + y');
    expect((await h.say('second')).texts).toEqual(['v2 started by first']);
    expect((await h.say('3')).texts).toEqual(['got 3']);
  });

  it('a change that does not compile is logged and the last good version goes on serving', async () => {
    const h = await bot({ 'start.bas': FORM });
    await h.start();
    await h.write('start.bas', 'TALK "broken\nHEAR name');
    expect((await h.say('Ana')).texts).toEqual(['Age?']);
    expect(h.logs.find((l) => l.event === 'dialog.script_invalid')).toMatchObject({
      level: 50,
      script: 'start.bas',
      errors: ['start.bas:1:6: this text has no closing quote (")'],
    });
    expect((await h.say('40')).texts).toEqual(['Ana is 40']);
  });

  it('the script a session waits in is deleted: the message goes to message.bas', async () => {
    const h = await bot({ 'start.bas': FORM, 'message.bas': 'TALK "echo " + message' });
    await h.start();
    await rm(path.join(h.dir, 'start.bas'));
    expect((await h.say('Ana')).texts).toEqual(['echo Ana']);
    expect(h.logs.find((l) => l.event === 'dialog.script_restarted')).toMatchObject({
      reason: 'start.bas no longer exists',
    });
    expect(h.state.dialog).toBeNull();
  });

  it('a script run by RUN is deleted: the session restarts from its first script (whose RUN now fails)', async () => {
    const h = await bot({ 'start.bas': 'TALK "v1"\nRUN "form.bas"', 'form.bas': FORM });
    await h.start();
    await rm(path.join(h.dir, 'form.bas'));
    expect((await h.say('Ana')).texts).toEqual(['Sorry, something went wrong on my side. Please try again.']);
    expect(h.logs.find((l) => l.event === 'dialog.runtime_error')).toMatchObject({
      at: 'start.bas:2',
      err: 'RUN: this bot has no script form.bas',
    });
    expect(h.state.dialog).toBeNull();
  });

  it('a stored dialog state that is not valid is dropped, never a crash', async () => {
    const h = await bot({ 'message.bas': 'TALK "fresh " + message' });
    await h.start();
    h.snapshot.state.dialog = { v: 99, whatever: true };
    expect((await h.say('x')).texts).toEqual(['fresh x']);
    expect(h.logs.some((l) => l.event === 'dialog.state_invalid')).toBe(true);
  });
});
