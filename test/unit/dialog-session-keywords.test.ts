import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBots } from '../../src/config/bots.ts';
import { checkConfiguration } from '../../src/config/check.ts';
import { loadConfig } from '../../src/config/env.ts';
import { compileScript } from '../../src/dialog/compiler.ts';
import { tempDir } from '../helpers/database.ts';
import { REPO_ROOT } from '../helpers/hub.ts';

const FIXTURES = path.join(REPO_ROOT, 'test/fixtures/keywords');
const errorsOf = (source: string) => compileScript('t.bas', source).errors.map((e) => e.message);
const ops = (source: string) => {
  const { script, errors } = compileScript('t.bas', source);
  expect(errors.map((e) => e.message)).toEqual([]);
  return script!.units.get('')!.code.map((i) => i.op);
};

describe('session keywords in the dialog language', () => {
  it('compiles each keyword, statement and value forms', () => {
    expect(ops('SEND TO SESSION id, "hi"')).toEqual(['load', 'push', 'sendToSession', 'push', 'return']);
    expect(ops('err = SEND TO SESSION id, "a" + "b"')).toContain('store');
    expect(ops('s = CREATE SUB SESSION')).toEqual(['createSubSession', 'store', 'push', 'return']);
    expect(ops('RUN IN SESSION s, "task.bas"')).toContain('runInSession');
    expect(ops('MERGE SESSION s')).toContain('mergeSession');
    expect(ops('APPLY SESSION TEMPLATE "support_agent"')).toContain('applyTemplate');
    const debug = compileScript('t.bas', 'DEBUG SHOW SESSION\ndebug show context\nDebug Show Variables')
      .script!;
    expect(debug.units.get('')!.code.filter((i) => i.op === 'debugShow')).toMatchObject([
      { what: 'SESSION' },
      { what: 'CONTEXT' },
      { what: 'VARIABLES' },
    ]);
  });

  it('keeps SEND, MERGE, APPLY, DEBUG and CREATE usable as variable names', () => {
    expect(
      ops('send = 1\nmerge = send + 1\napply = merge\ndebug = apply\ncreate = debug\nTALK create'),
    ).toContain('talk');
  });

  it('collects literal RUN IN SESSION scripts and template names for the checks', () => {
    const r = compileScript(
      't.bas',
      'RUN IN SESSION s, "task"\nAPPLY SESSION TEMPLATE "a"\nAPPLY SESSION TEMPLATE x',
    );
    expect(r.runs.map((x) => x.script)).toEqual(['task.bas']);
    expect(r.templates.map((t) => t.name)).toEqual(['a']);
  });

  it('says what is wrong with a malformed use, at its line', () => {
    expect(errorsOf('CREATE SUB SESSION')).toEqual([
      't.bas:1:1: CREATE SUB SESSION gives the new session: write sub = CREATE SUB SESSION',
    ]);
    expect(errorsOf('SEND TO SESSION id "x"')).toEqual([
      't.bas:1:20: expected "," between the session and the text (SEND TO SESSION id, "text"), found text "x"',
    ]);
    expect(errorsOf('DEBUG SHOW EVERYTHING')).toEqual([
      't.bas:1:12: expected SESSION, CONTEXT or VARIABLES after DEBUG SHOW, found "EVERYTHING"',
    ]);
    expect(errorsOf('APPLY SESSION "x"')).toEqual([
      't.bas:1:15: expected TEMPLATE after APPLY SESSION, found text "x"',
    ]);
    expect(errorsOf('RUN IN SESSION s')).toEqual([
      't.bas:1:17: expected "," between the sub-session and the script (RUN IN SESSION sub, "task.bas"), found the end of the line',
    ]);
    expect(errorsOf('ON SESSION END\n  RUN IN SESSION s, "x.bas"\nEND ON')).toEqual([
      't.bas:2:3: RUN IN SESSION cannot run inside ON SESSION END',
    ]);
  });
});

/** Runs `switchboard check` as a real process. */
function check(configDir: string) {
  return new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/switchboard.js'), 'check'], {
      cwd: configDir,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', CONFIG_DIR: configDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout }));
  });
}

describe('switchboard check and the session templates', () => {
  let config: string;
  beforeAll(async () => {
    config = await tempDir('sbt-keywords-');
    const write = async (file: string, text: string) => {
      await fs.mkdir(path.dirname(path.join(config, 'bots', file)), { recursive: true });
      await fs.writeFile(path.join(config, 'bots', file), text);
    };
    await write('b/message.bas', 'APPLY SESSION TEMPLATE "known"\nAPPLY SESSION TEMPLATE "nowhere"\n');
    await write('b/session-templates/known.json', '{"kbs": ["faq"]}');
    await write('b/session-templates/bad.json', '{"kbs": "faq", "colour": 1}');
  });
  afterAll(async () => {
    await fs.rm(config, { recursive: true, force: true });
  });

  it('accepts the sessions document’s examples (fixture bot `hub`, seeds.bas)', async () => {
    const {
      bots: [hub],
    } = await checkConfiguration(loadConfig({ CONFIG_DIR: FIXTURES }), { only: 'hub' });
    expect(hub!.scripts).toContain('seeds.bas');
    expect(hub!.problems).toEqual([]);
    const res = await check(FIXTURES);
    expect(res.stdout.trim()).toMatch(/no errors$/);
    expect(res.code).toBe(0);
  });

  it('reports an unknown template and a template that does not validate', async () => {
    const res = await check(config);
    expect(res.code).toBe(1);
    expect(res.stdout.trim().split('\n')).toEqual([
      'bots/b/session-templates/bad.json: kbs: Invalid input: expected array, received string',
      'bots/b/session-templates/bad.json: (root): Unrecognized key: "colour"',
      'bots/b/message.bas:2:1: APPLY SESSION TEMPLATE: this bot has no template nowhere (session-templates/nowhere.json)',
      '3 errors in 1 script in 1 bot',
    ]);
  });

  it('refuses to start with a template that does not validate, and loads the good ones', async () => {
    await expect(loadBots(config)).rejects.toThrow(/bad\.json: kbs/);
    const bots = await loadBots(FIXTURES);
    expect(bots.get('hub').templates?.get('support_agent')).toMatchObject({
      kbs: ['faq'],
      variables: { tier: 'gold' },
    });
    expect(bots.get('loud').settings.debug).toBe(true);
    expect(bots.get('hub').settings.debug).toBe(false);
  });
});
