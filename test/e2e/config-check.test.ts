import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runSwitchboard } from '../helpers/cli.ts';
import { tempDir } from '../helpers/database.ts';
import { apiClient } from '../helpers/hub.ts';
import { FakeOpenAi } from '../helpers/openai-server.ts';
import { ServerProcess } from '../helpers/server-process.ts';
import { until } from '../helpers/until.ts';

/**
 * `switchboard check` refuses what `switchboard start` refuses: each problem on a line as
 * `file: field: message`, exit 1. Both run as real processes on the same configuration.
 */
describe('switchboard check finds what start refuses', () => {
  let dir: string;
  const write = async (file: string, text: string) => {
    await fs.mkdir(path.dirname(path.join(dir, 'bots', file)), { recursive: true });
    await fs.writeFile(path.join(dir, 'bots', file), text);
  };
  const check = (args: string[] = [], env: Record<string, string> = {}) =>
    runSwitchboard(['check', ...args], { CONFIG_DIR: dir, ...env }, { cwd: dir });
  const start = (env: Record<string, string> = {}) =>
    runSwitchboard(
      ['start'],
      { CONFIG_DIR: dir, DATA_DIR: path.join(dir, 'data'), PORT: '0', ...env },
      { cwd: dir },
    );

  beforeEach(async () => {
    dir = await tempDir('sbt-config-check-');
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('a bot.json that does not validate, and a bot folder named after a route of the hub', async () => {
    await write('shop/bot.json', '{"greting":"hi","sessions":{"idleTimeoutMinutes":"ten"}}');
    await fs.mkdir(path.join(dir, 'bots/api'), { recursive: true });
    await fs.mkdir(path.join(dir, 'bots/Sales Team'), { recursive: true });
    const res = await check();
    expect(res.stderr).toBe('');
    expect(res.stdout.trim().split('\n')).toEqual([
      `bots/Sales Team: a bot name is lower-case letters, digits, - and _`,
      `bots/api: "api" is a route of the hub (api, console, docs, webhooks, ws, healthz, readyz, metrics, widget, static, assets are reserved); rename the bot folder`,
      'bots/shop/bot.json: sessions.idleTimeoutMinutes: Invalid input: expected number, received string',
      'bots/shop/bot.json: (root): Unrecognized key: "greting"',
      '4 errors in 0 scripts in 3 bots',
    ]);
    expect(res.code).toBe(1);
    // start refuses the same, naming every problem.
    const started = await start();
    expect(started.code).toBe(1);
    expect(started.stderr).toContain('sessions.idleTimeoutMinutes: Invalid input: expected number');
    expect(started.stderr).toContain('"api" is a route of the hub');
  });

  it('a handler.ts that does not load, and one without onMessage', async () => {
    await write('broken/handler.ts', 'export default { onMessage( };\n');
    await write('throws/handler.ts', "throw new Error('no database configured for this bot');\n");
    await write('empty/handler.ts', 'export default { greeting: "hi" };\n');
    // Its import leaves a timer running, as a handler with a connection pool would: check still ends.
    await write(
      'fine/handler.ts',
      'setInterval(() => undefined, 1000);\nexport default { async onMessage(ctx) { ctx.talk("ok"); } };\n',
    );
    const res = await check();
    expect(res.stdout.trim().split('\n')).toEqual([
      'bots/broken/handler.ts:1:29: cannot be loaded: Expected identifier but found "}"',
      'bots/empty/handler.ts: the default export must be a bot handler with onMessage',
      'bots/throws/handler.ts: cannot be loaded: no database configured for this bot',
      '3 errors in 0 scripts in 4 bots',
    ]);
    expect(res.code).toBe(1);
    const started = await start();
    expect(started.code).toBe(1);
    expect(started.stderr).toContain(
      'bots/empty/handler.ts: the default export must be a bot handler with onMessage',
    );
    // A handler that fails to load is named, not a stack trace.
    expect(started.stderr).toContain(
      'bots/throws/handler.ts: cannot be loaded: no database configured for this bot',
    );
    expect(started.stderr).not.toMatch(/\n\s+at /);

    expect(await check(['fine'])).toMatchObject({ code: 0, stdout: '0 scripts in 1 bot: no errors\n' });
  });

  it("a webhook whose secret variable is not set, and a bot's sign-in secret that is not set", async () => {
    await write(
      'hooks/bot.json',
      JSON.stringify({
        webhooks: [
          { url: 'https://crm.example.com/hooks', secretEnv: 'CRM_HOOK_SECRET', events: ['session.started'] },
        ],
        auth: { secretEnv: 'PARTNER_JWT_SECRET', issuer: 'https://partner.example', audience: 'switchboard' },
      }),
    );
    const res = await check();
    expect(res.stdout.trim().split('\n')).toEqual([
      'bots/hooks/bot.json: auth.secretEnv names PARTNER_JWT_SECRET, which is not set',
      'bots/hooks/bot.json: webhooks.0.secretEnv: names CRM_HOOK_SECRET, which is not set: the events for https://crm.example.com/hooks could not be signed, so none would be delivered',
      '2 errors in 0 scripts in 1 bot',
    ]);
    expect(res.code).toBe(1);
    const set = {
      CRM_HOOK_SECRET: 'whsec-0123456789',
      PARTNER_JWT_SECRET: 'a-shared-secret-of-32-characters!!',
    };
    expect(await check([], set)).toMatchObject({ code: 0, stdout: '0 scripts in 1 bot: no errors\n' });
  });

  it('a channel in BROADCAST_RATE_LIMITS that no channel has', async () => {
    await write('shop/bot.json', '{}');
    const res = await check([], { BROADCAST_RATE_LIMITS: 'whatsap=5,email=2' });
    expect(res.stdout.trim().split('\n')).toEqual([
      'environment: BROADCAST_RATE_LIMITS: "whatsap" is not a channel; the channels are api, whatsapp, teams, telegram, slack, email, web',
      '1 error in 0 scripts in 1 bot',
    ]);
    expect(res.code).toBe(1);
  });

  it("the channels' settings: each channel that refuses its own, and a bot a channel names that is not there", async () => {
    await write('shop/bot.json', '{}');
    const channels = {
      WHATSAPP_ACCESS_TOKEN: 'EAAG-token',
      TEAMS_APP_ID: '00000000-0000-0000-0000-000000000001',
      TELEGRAM_BOT_TOKEN: '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw',
      SLACK_SIGNING_SECRET: 'slack-signing-secret',
      SLACK_BOT_TOKEN: 'xoxb-1-2-abc',
      SLACK_BOT: 'sales',
      EMAIL_IMAP_HOST: '127.0.0.1',
      EMAIL_IMAP_USER: 'bot@example.com',
      EMAIL_IMAP_PASSWORD: 'secret',
      EMAIL_SMTP_HOST: '127.0.0.1',
      EMAIL_FROM: 'bot@example.com',
      EMAIL_MAILBOXES: 'INBOX=shop,Support=support',
      WEB_MAX_FRAME_BYTES: '12',
      WEB_HEARTBEAT_MS: 'often',
    };
    const res = await check([], channels);
    expect(res.stderr).toBe('');
    expect(res.stdout.trim().split('\n')).toEqual([
      'environment: the WhatsApp Cloud API needs WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN as well',
      'environment: TEAMS_APP_TYPE=MultiTenant needs TEAMS_APP_PASSWORD (the client secret)',
      'environment: the Telegram channel needs TELEGRAM_WEBHOOK_SECRET as well',
      'environment: SLACK_BOT: names bot "sales", which does not exist (the slack channel answers with it)',
      'environment: EMAIL_MAILBOXES: folder "Support" names bot "support", which does not exist (the email channel answers with it)',
      'environment: WEB_MAX_FRAME_BYTES: Too small: expected number to be >=1024',
      'environment: WEB_HEARTBEAT_MS: Invalid input: expected number, received NaN',
      '7 errors in 0 scripts in 1 bot',
    ]);
    expect(res.code).toBe(1);
    // start refuses each of them: the first it meets, then the next once that one is set right.
    const started = await start(channels);
    expect(started).toMatchObject({
      code: 1,
      stderr:
        'switchboard: the WhatsApp Cloud API needs WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN as well\n',
    });
    const set = {
      WHATSAPP_APP_SECRET: 'app-secret',
      WHATSAPP_VERIFY_TOKEN: 'verify-token',
      WHATSAPP_BOT: 'shop',
      TEAMS_APP_PASSWORD: 'client-secret',
      TEAMS_BOT: 'shop',
      TELEGRAM_WEBHOOK_SECRET: 'telegram-secret',
      TELEGRAM_BOT: 'shop',
      WEB_MAX_FRAME_BYTES: '65536',
      WEB_HEARTBEAT_MS: '30000',
    };
    const named = await start({ ...channels, ...set });
    expect(named).toMatchObject({
      code: 1,
      stderr:
        'switchboard: SLACK_BOT: names bot "sales", which does not exist (the slack channel answers with it); EMAIL_MAILBOXES: folder "Support" names bot "support", which does not exist (the email channel answers with it)\n',
    });
    expect(
      await check([], { ...channels, ...set, SLACK_BOT: 'shop', EMAIL_MAILBOXES: 'INBOX=shop' }),
    ).toMatchObject({ code: 0, stdout: '0 scripts in 1 bot: no errors\n' });
  });

  it("a bot's LLM key variable that is not set: check fails; start warns and runs, that bot apologises, the others answer", async () => {
    const llm = new FakeOpenAi();
    await llm.start();
    // As an API that wants a key answers a request without one.
    llm.handle((r) =>
      r.headers.authorization
        ? { text: 'from the model' }
        : { status: 401, body: { error: { message: 'no key' } } },
    );
    let hub: ServerProcess | undefined;
    try {
      await write(
        'ai/bot.json',
        JSON.stringify({
          apology: 'Sorry, ai is broken.',
          llm: { baseUrl: llm.url, model: 'm', apiKeyEnv: 'SBT_AI_KEY' },
        }),
      );
      await write('shop/bot.json', JSON.stringify({ defaultReply: 'Shop here.' }));
      const res = await check();
      expect(res.stdout.trim().split('\n')).toEqual([
        "bots/ai/bot.json: llm.apiKeyEnv: names SBT_AI_KEY, which is not set: the bot's requests to its LLM would carry no key, and each one the API refuses is answered with the bot's apology",
        '1 error in 0 scripts in 2 bots',
      ]);
      expect(res.code).toBe(1);
      expect(await check([], { SBT_AI_KEY: 'sk-set' })).toMatchObject({
        code: 0,
        stdout: '0 scripts in 2 bots: no errors\n',
      });

      // start warns and serves every bot: the one without its key apologises, the others answer.
      hub = new ServerProcess({
        CONFIG_DIR: dir,
        DATA_DIR: path.join(dir, 'data'),
        PORT: '0',
        LOG_FORMAT: 'json',
      });
      await hub.start();
      const logged = (event: string) =>
        hub!.output
          .join('')
          .split('\n')
          .filter((line) => line.includes(`"${event}"`))
          .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(logged('llm.api_key_missing')).toEqual([
        expect.objectContaining({ level: 40, bot: 'ai', variable: 'SBT_AI_KEY' }),
      ]);
      const api = apiClient(hub.url);
      const texts = (r: { json: { replies: { text: string }[] } }) => r.json.replies.map((m) => m.text);
      const ai = await api.createSession('ai');
      expect(texts(await api.chat(ai.token, 'hello'))).toEqual(['Sorry, ai is broken.']);
      expect(llm.requests.at(-1)?.headers.authorization).toBeUndefined();
      // The failed request's line names the variable, next to the API's refusal.
      const failed = await until(
        () => logged('llm.request_failed'),
        (lines) => lines.length > 0,
      );
      expect(failed[0]).toMatchObject({ apiKeyUnset: 'SBT_AI_KEY', err: expect.stringContaining('401') });
      const shop = await api.createSession('shop');
      expect(texts(await api.chat(shop.token, 'hello'))).toEqual(['Shop here.']);
    } finally {
      await hub?.stop();
      await llm.stop();
    }
  });

  it('start refuses a webhook endpoint whose secret is not set, naming the bot, URL and variable', async () => {
    await write(
      'hooks/bot.json',
      JSON.stringify({
        webhooks: [
          { url: 'https://crm.example.com/hooks', secretEnv: 'CRM_HOOK_SECRET', events: ['session.started'] },
        ],
      }),
    );
    const started = await start();
    expect(started.stderr).toBe(
      'switchboard: bot "hooks": webhooks.0.secretEnv names CRM_HOOK_SECRET, which is not set: the events for https://crm.example.com/hooks could not be signed, so none would be delivered\n',
    );
    expect(started.code).toBe(1);
  });
});
