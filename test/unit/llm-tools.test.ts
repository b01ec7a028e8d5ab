import fs from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BotConfigError, BotSettingsSchema, loadBots } from '../../src/config/bots.ts';
import { checkConfiguration } from '../../src/config/check.ts';
import { loadConfig } from '../../src/config/env.ts';
import type { BotContext } from '../../src/engine/bot.ts';
import { TurnDraft } from '../../src/engine/turn.ts';
import { parseEnvelope } from '../../src/envelope.ts';
import { BotTools, ToolConfigError } from '../../src/llm/tools.ts';
import { silentLogger, tempDir } from '../helpers/database.ts';
import { freshSnapshot } from '../helpers/session-snapshot.ts';
import { until } from '../helpers/until.ts';

const llm = (tools: unknown[]) => ({ llm: { baseUrl: 'http://127.0.0.1:9/v1', model: 'm', tools } });
const lookup = {
  name: 'lookup',
  description: 'Looks a word up',
  parameters: {
    type: 'object',
    properties: { word: { type: 'string' }, times: { type: 'integer', minimum: 1 } },
    required: ['word'],
  },
  script: 'lookup.bas',
};

function context(): { ctx: BotContext; draft: TurnDraft } {
  const now = new Date().toISOString();
  const draft = new TurnDraft(
    freshSnapshot({ id: '00000000-0000-4000-8000-000000000001', bot: 'b', lastSeq: 4 }),
    parseEnvelope({ id: 'api:1', channel: 'api', bot: 'b', from: { id: 'k' }, text: 'hi', receivedAt: now }),
  );
  const reads = { botMemory: async () => null, userMemory: async () => null, history: async () => [] };
  return { ctx: draft.context(silentLogger, reads), draft };
}

const call = (name: string, args: unknown) => ({
  id: 'c1',
  type: 'function' as const,
  function: { name, arguments: typeof args === 'string' ? args : JSON.stringify(args) },
});

describe('tools', () => {
  let dir: string;
  let server: Server;
  let url = '';
  const seen: string[] = [];

  beforeAll(async () => {
    dir = await tempDir('sbt-tools-');
    await fs.mkdir(path.join(dir, 'tools'));
    await fs.writeFile(
      path.join(dir, 'tools/lookup.bas'),
      'SET looked_up = word\nFOR i = 1 TO times\n  TALK word + " means something"\nNEXT\n',
    );
    await fs.writeFile(path.join(dir, 'tools/waits.bas'), 'x = HEAR\n');
    server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(req.url?.includes('fail') ? 502 : 200, { 'content-type': 'text/plain' });
      res.end(req.url?.includes('fail') ? 'upstream down' : 'sunny');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('runs a script tool: arguments as variables, TALKs as the result, SETs kept with the turn', async () => {
    const tools = await BotTools.load(dir, BotSettingsSchema.parse(llm([lookup])));
    const { ctx, draft } = context();
    const out = await tools.run(call('lookup', { word: 'kettle', times: 2 }), ctx, ['lookup']);
    expect(out).toMatchObject({ ok: true, content: 'kettle means something\nkettle means something' });
    expect(draft.state.variables.looked_up).toBe('kettle');
    expect(draft.replies).toEqual([]);
  });

  it('tells the model what went wrong instead of failing the turn', async () => {
    const settings = BotSettingsSchema.parse(
      llm([
        lookup,
        { name: 'waits', description: 'd', script: 'waits.bas' },
        {
          name: 'weather',
          description: 'd',
          parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } } },
          http: { url: `${url}/weather`, method: 'GET' },
        },
        { name: 'broken', description: 'd', http: { url: `${url}/fail` } },
        {
          name: 'secret',
          description: 'd',
          http: { url: `${url}/x`, headersFromEnv: { authorization: 'SB_UNSET_VAR_X' } },
        },
      ]),
    );
    const tools = await BotTools.load(dir, settings, {});
    const active = ['lookup', 'waits', 'weather', 'broken', 'secret'];
    const { ctx, draft } = context();
    expect((await tools.run(call('lookup', { times: 0 }), ctx, active)).content).toMatch(
      /^error: invalid arguments: word: .*; times: /,
    );
    expect((await tools.run(call('lookup', '{oops'), ctx, active)).content).toBe(
      'error: the arguments are not JSON',
    );
    expect((await tools.run(call('lookup', { word: 'x' }), ctx, [])).content).toBe(
      'error: there is no tool named "lookup"',
    );
    expect((await tools.run(call('nope', {}), ctx, active)).content).toBe(
      'error: there is no tool named "nope"',
    );
    expect((await tools.run(call('waits', {}), ctx, active)).content).toBe(
      'error: a tool script cannot wait for an answer (HEAR)',
    );
    expect(await tools.run(call('weather', { city: 'Lisbon', days: 2 }), ctx, active)).toMatchObject({
      ok: true,
      content: 'sunny',
    });
    expect(seen.at(-1)).toBe('GET /weather?city=Lisbon&days=2');
    expect((await tools.run(call('broken', {}), ctx, active)).content).toBe('error: HTTP 502: upstream down');
    expect((await tools.run(call('secret', {}), ctx, active)).content).toBe(
      'error: the environment variable SB_UNSET_VAR_X is not set',
    );
    expect(draft.state.variables).toEqual({});
    expect(tools.specs(['weather', 'unknown', 'lookup']).map((s) => s.function.name)).toEqual([
      'weather',
      'lookup',
    ]);
  });

  it('checks arguments against the schema with every object closed: extra keys go back to the model as an error', async () => {
    const settings = BotSettingsSchema.parse(
      llm([
        lookup,
        {
          name: 'forecast',
          description: 'd',
          parameters: {
            type: 'object',
            properties: {
              city: { type: 'string' },
              when: { type: 'object', properties: { day: { type: 'string' } } },
            },
            required: ['city'],
          },
          http: { url: `${url}/forecast`, method: 'GET' },
        },
        {
          name: 'open',
          description: 'd',
          parameters: { type: 'object', properties: { q: { type: 'string' } }, additionalProperties: true },
          http: { url: `${url}/open`, method: 'GET' },
        },
      ]),
    );
    const tools = await BotTools.load(dir, settings, {});
    const active = ['lookup', 'forecast', 'open'];
    const { ctx, draft } = context();
    const calls = seen.length;

    // A script tool: an undeclared key never becomes a variable.
    const script = await tools.run(
      call('lookup', { word: 'kettle', times: 1, looked_up: 'forged' }),
      ctx,
      active,
    );
    expect(script).toMatchObject({
      ok: false,
      content: 'error: invalid arguments: looked_up: not a parameter of this tool',
    });
    expect(draft.state.variables).toEqual({});
    // An HTTP tool: an undeclared key, at the top or inside a declared object, never reaches the query string.
    expect((await tools.run(call('forecast', { city: 'Oslo', api_key: 'x' }), ctx, active)).content).toBe(
      'error: invalid arguments: api_key: not a parameter of this tool',
    );
    expect(
      (await tools.run(call('forecast', { city: 'Oslo', when: { day: 'mon', hour: 3 } }), ctx, active))
        .content,
    ).toBe('error: invalid arguments: when.hour: not a parameter of this tool');
    expect((await tools.run(call('forecast', { city: 7 }), ctx, active)).content).toBe(
      'error: invalid arguments: city: must be string',
    );
    expect(seen.length).toBe(calls);
    // What the model is shown is the closed schema; a schema that opens itself stays open.
    const [forecast, open] = tools.specs(['forecast', 'open']);
    expect(forecast!.function.parameters).toMatchObject({
      additionalProperties: false,
      properties: { when: { additionalProperties: false } },
    });
    expect(open!.function.parameters).toMatchObject({ additionalProperties: true });
    expect(await tools.run(call('open', { q: 'a', extra: 'b' }), ctx, active)).toMatchObject({ ok: true });
    expect(seen.at(-1)).toBe('GET /open?q=a&extra=b');
  });

  it("never lets an argument overwrite the URL's own query values or the script's own variables", async () => {
    const open = { type: 'object', properties: { q: { type: 'string' } }, additionalProperties: true };
    const settings = BotSettingsSchema.parse(
      llm([
        { ...lookup, name: 'loose', parameters: { ...lookup.parameters, additionalProperties: true } },
        {
          name: 'search',
          description: 'd',
          parameters: open,
          http: { url: `${url}/search?key=k1&lang=en`, method: 'GET' },
        },
      ]),
    );
    const tools = await BotTools.load(dir, settings, {});
    const { ctx } = context();
    const calls = seen.length;
    expect(
      (await tools.run(call('search', { q: 'tea', key: 'attacker', lang: 'fr' }), ctx, ['search'])).content,
    ).toBe('error: invalid arguments: key: is reserved; lang: is reserved');
    expect(
      (await tools.run(call('loose', { word: 'x', message: 'forged', Channel: 'teams' }), ctx, ['loose']))
        .content,
    ).toBe('error: invalid arguments: message: is reserved; Channel: is reserved');
    expect(seen.length).toBe(calls);
    expect(await tools.run(call('search', { q: 'tea' }), ctx, ['search'])).toMatchObject({ ok: true });
    expect(seen.at(-1)).toBe('GET /search?key=k1&lang=en&q=tea');

    // Declaring such a parameter is refused when the bot loads.
    const declares = (tool: unknown) => BotTools.load(dir, BotSettingsSchema.parse(llm([tool])), {});
    await expect(
      declares({
        name: 'search',
        description: 'd',
        parameters: { type: 'object', properties: { key: { type: 'string' } } },
        http: { url: `${url}/search?key=k1`, method: 'GET' },
      }),
    ).rejects.toThrow(/tool "search": parameter "key" is fixed by the tool's URL/);
    await expect(
      declares({ ...lookup, parameters: { type: 'object', properties: { message: { type: 'string' } } } }),
    ).rejects.toThrow(/tool "lookup": parameter "message" is one of the script's own variables/);
    await expect(
      declares({ ...lookup, parameters: { type: 'object', properties: { n: { type: 'nonsense' } } } }),
    ).rejects.toThrow(/tool "lookup": parameters is not a usable JSON schema/);
  });

  it('refuses at start a tool whose script is missing or broken, and a key written in bot.json', async () => {
    await expect(
      BotTools.load(dir, BotSettingsSchema.parse(llm([{ ...lookup, script: 'missing.bas' }]))),
    ).rejects.toThrow(ToolConfigError);
    const broken = await tempDir('sbt-tools-broken-');
    try {
      await fs.mkdir(path.join(broken, 'bots/b/tools'), { recursive: true });
      await fs.writeFile(path.join(broken, 'bots/b/tools/lookup.bas'), 'IF x THEN\nTALK "never closed"\n');
      await fs.writeFile(path.join(broken, 'bots/b/bot.json'), JSON.stringify(llm([lookup])));
      await expect(
        BotTools.load(path.join(broken, 'bots/b'), BotSettingsSchema.parse(llm([lookup]))),
      ).rejects.toThrow(/tools\/lookup\.bas:\d+:\d+/);
      // `switchboard check` reports it too.
      const {
        bots: [check],
      } = await checkConfiguration(loadConfig({ CONFIG_DIR: broken }), { only: 'b' });
      expect(check!.scripts).toEqual(['tools/lookup.bas']);
      expect(check!.problems.map((p) => p.file)).toEqual([path.join(broken, 'bots/b/tools/lookup.bas')]);

      await fs.writeFile(
        path.join(broken, 'bots/b/bot.json'),
        JSON.stringify({ llm: { baseUrl: 'http://x/v1', model: 'm', apiKey: 'sk-live-123' } }),
      );
      await expect(loadBots(broken)).rejects.toThrow(BotConfigError);
      await expect(loadBots(broken)).rejects.toThrow(/llm\.apiKey: keep the key out of bot\.json/);
    } finally {
      await fs.rm(broken, { recursive: true, force: true });
    }
  });
});

describe('HTTP tools: responses read up to a cap, secret headers kept to their origin', () => {
  let home: Server;
  let elsewhere: Server;
  let homeUrl = '';
  let elsewhereUrl = '';
  /** Per request path: the secret headers that arrived. */
  const arrived: { at: string; key?: string; auth?: string; plain?: string; method?: string }[] = [];
  /** Bytes the endless endpoint wrote before the client went away, per request. */
  const endless: { written: number; closed: boolean }[] = [];

  const listen = async (server: Server) => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };

  beforeAll(async () => {
    const record = (name: string) => (req: IncomingMessage, res: ServerResponse) => {
      const u = req.url ?? '/';
      if (u.startsWith('/endless')) {
        const state = { written: 0, closed: false };
        endless.push(state);
        res.writeHead(200, { 'content-type': 'text/plain' });
        const chunk = Buffer.alloc(16 * 1024, 'x');
        const pump = () => {
          while (!state.closed && state.written < 64 * 1024 * 1024) {
            state.written += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('close', () => {
          state.closed = true;
        });
        pump();
        return;
      }
      if (u.startsWith('/big')) {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`${'é'.repeat(1500)}${'x'.repeat(100_000)}`);
        return;
      }
      if (u.startsWith('/forever')) {
        res.writeHead(302, { location: '/forever' });
        res.end();
        return;
      }
      const to = new URL(u, 'http://h').searchParams.get('to');
      if (to) {
        res.writeHead(Number(new URL(u, 'http://h').searchParams.get('status') ?? 302), { location: to });
        res.end();
        return;
      }
      arrived.push({
        at: `${name}${u.split('?')[0]}`,
        key: req.headers['x-api-key'] as string | undefined,
        auth: req.headers.authorization,
        plain: req.headers['x-plain'] as string | undefined,
        method: req.method,
      });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`reached ${name}`);
    };
    home = createServer(record('home'));
    elsewhere = createServer(record('elsewhere'));
    homeUrl = await listen(home);
    elsewhereUrl = await listen(elsewhere);
  });
  afterAll(async () => {
    home.closeAllConnections();
    await new Promise((r) => home.close(r));
    await new Promise((r) => elsewhere.close(r));
  });

  const env = { SB_TOOL_KEY: 'k-secret', SB_TOOL_AUTH: 'Bearer a-secret' };
  const httpTool = (name: string, url: string, extra: Record<string, unknown> = {}) => ({
    name,
    description: 'd',
    parameters: { type: 'object', properties: {}, additionalProperties: true },
    http: {
      url,
      headers: { 'x-plain': 'visible' },
      headersFromEnv: { 'x-api-key': 'SB_TOOL_KEY', authorization: 'SB_TOOL_AUTH' },
      timeoutMs: 5000,
      ...extra,
    },
  });
  const load = (tools: unknown[]) => BotTools.load('/nonexistent', BotSettingsSchema.parse(llm(tools)), env);

  it('stops reading at the cap (64 KiB unless the tool says otherwise) and lets the rest go', async () => {
    const tools = await load([
      httpTool('endless', `${homeUrl}/endless`),
      httpTool('big', `${homeUrl}/big`, { maxResponseBytes: 2048 }),
    ]);
    const { ctx } = context();
    const out = await tools.run(call('endless', {}), ctx, ['endless']);
    expect(out.ok).toBe(true);
    expect(out.content).toMatch(/^x{8000}… \(cut\)$/);
    await until(
      async () => endless.at(-1)!,
      (s) => s.closed,
    );
    // What was sent before the hub hung up is the cap plus what the sockets buffered, not 64 MiB.
    expect(endless.at(-1)!.written).toBeLessThan(16 * 1024 * 1024);

    const big = await tools.run(call('big', {}), ctx, ['big']);
    // 2048 bytes: 1024 two-byte characters, nothing after them, and a note that it was cut.
    expect(big).toMatchObject({ ok: true, content: `${'é'.repeat(1024)}… (cut at 2048 bytes)` });
    expect(() =>
      BotSettingsSchema.parse(llm([httpTool('tiny', homeUrl, { maxResponseBytes: 10 })])),
    ).toThrow();
  });

  it('follows redirects, sending the headersFromEnv only while they stay on the configured origin', async () => {
    const same = `${homeUrl}/hop?to=${encodeURIComponent('/target')}`;
    const cross = `${homeUrl}/hop?status=307&to=${encodeURIComponent(`${elsewhereUrl}/target`)}`;
    const back = `${homeUrl}/hop?to=${encodeURIComponent(`${elsewhereUrl}/hop?to=${encodeURIComponent(`${homeUrl}/back`)}`)}`;
    const tools = await load([
      httpTool('same', same, { method: 'GET' }),
      httpTool('cross', cross),
      httpTool('back', back, { method: 'GET' }),
      httpTool('loop', `${homeUrl}/forever`, { method: 'GET' }),
    ]);
    const { ctx } = context();
    const active = ['same', 'cross', 'back', 'loop'];

    expect((await tools.run(call('same', {}), ctx, active)).content).toBe('reached home');
    expect(arrived.at(-1)).toEqual({
      at: 'home/target',
      key: 'k-secret',
      auth: 'Bearer a-secret',
      plain: 'visible',
      method: 'GET',
    });

    // A POST redirected with 307 to another origin stays a POST, without the secrets.
    expect((await tools.run(call('cross', { q: 1 }), ctx, active)).content).toBe('reached elsewhere');
    expect(arrived.at(-1)).toEqual({ at: 'elsewhere/target', plain: 'visible', method: 'POST' });

    // Once the chain left the origin, coming back does not bring the secrets back.
    expect((await tools.run(call('back', {}), ctx, active)).content).toBe('reached home');
    expect(arrived.at(-1)).toEqual({ at: 'home/back', plain: 'visible', method: 'GET' });
    expect(arrived.filter((a) => a.at.startsWith('elsewhere')).every((a) => !a.key && !a.auth)).toBe(true);
    expect((await tools.run(call('loop', {}), ctx, active)).content).toBe('error: more than 5 redirects');
  });
});

describe("HTTP tools' Idempotency-Key", () => {
  let server: Server;
  let url = '';
  const keys: (string | string[] | undefined)[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      keys.push(req.headers['idempotency-key']);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it('numbers the calls of a turn: the same turn computed again sends the same keys, in order', async () => {
    const dir = await tempDir('sbt-tool-keys-');
    const tools = await BotTools.load(
      dir,
      BotSettingsSchema.parse(llm([{ name: 'book', description: 'd', http: { url: `${url}/book` } }])),
      {},
    );
    const turn = async () => {
      const { ctx } = context();
      for (let i = 0; i < 2; i++)
        expect(await tools.run(call('book', {}), ctx, ['book'])).toMatchObject({ ok: true });
    };
    await turn();
    await turn();
    expect(keys).toHaveLength(4);
    expect(keys[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(keys[1]).not.toBe(keys[0]);
    expect(keys.slice(2)).toEqual(keys.slice(0, 2));
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("sends the author's own Idempotency-Key as written, and no second one", async () => {
    keys.length = 0;
    const dir = await tempDir('sbt-tool-keys-');
    const tools = await BotTools.load(
      dir,
      BotSettingsSchema.parse(
        llm([
          {
            name: 'fixed',
            description: 'd',
            http: { url: `${url}/fixed`, headers: { 'idempotency-key': 'the-author-s' } },
          },
        ]),
      ),
      {},
    );
    const { ctx } = context();
    expect(await tools.run(call('fixed', {}), ctx, ['fixed'])).toMatchObject({ ok: true });
    expect(keys).toEqual(['the-author-s']);
    await fs.rm(dir, { recursive: true, force: true });
  });
});
