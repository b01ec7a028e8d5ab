import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import pg from 'pg';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, type TestBrowser } from '../helpers/browser.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { REPO_ROOT } from '../helpers/hub.ts';
import { TEST_REDIS_URL, testRedisPrefix } from '../helpers/redis.ts';
import { ServerProcess } from '../helpers/server-process.ts';
import { until } from '../helpers/until.ts';

/** The shop's sign-in key, shared with the hub (AUTH_JWT_*). */
const JWT_SECRET = 'the-shop-and-the-hub-share-this-signing-secret';
const JWT_ISSUER = 'https://shop.example';
const JWT_AUDIENCE = 'switchboard-widget';

/**
 * The widget in Debian's chromium against the real server (a child process on PostgreSQL and
 * Redis), killed and restarted mid-conversation; and the embed script on a page of another origin.
 */
describe('web widget in a real browser', () => {
  let database: TestDatabase;
  const redisPrefix = testRedisPrefix();
  let server: ServerProcess;
  let port: number;
  let browser: TestBrowser;
  let redis: Redis;
  let page: Page;

  const serverEnv = (p: number) => ({
    PORT: String(p),
    DATABASE_URL: database.url,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_PREFIX: redisPrefix.prefix,
    CONFIG_DIR: path.join(REPO_ROOT, 'test/fixtures/web'),
    AUTH_JWT_SECRET: JWT_SECRET,
    AUTH_JWT_ISSUER: JWT_ISSUER,
    AUTH_JWT_AUDIENCE: JWT_AUDIENCE,
  });

  beforeAll(async () => {
    database = await createTestDatabase();
    server = new ServerProcess(serverEnv(0));
    await server.start();
    port = server.port!;
    browser = await launchChromium();
    redis = new Redis(TEST_REDIS_URL);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop('SIGKILL');
    redis?.disconnect();
    await database?.drop();
    await redisPrefix.cleanup();
  });

  const hub = () => `http://127.0.0.1:${port}`;
  const exact = (text: string) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  const replyShown = (p: Page, text: string, timeout = 15_000) =>
    p.locator('.msg.assistant', { hasText: exact(text) }).waitFor({ timeout });
  const online = (p: Page, timeout = 15_000) =>
    p.locator('.status[data-state="online"]').waitFor({ timeout });
  const send = async (p: Page, text: string) => {
    await p.locator('textarea').fill(text);
    await p.locator('textarea').press('Enter');
  };
  /** The conversation as shown: confirmed messages only, in order. */
  const conversation = (p: Page) =>
    p.locator('.msg[data-seq]').evaluateAll((els) => els.map((e) => `${e.classList[1]}:${e.textContent}`));
  const storedToken = (p: Page, bot = 'default') =>
    p.evaluate(([origin, b]) => localStorage.getItem(`switchboard:${origin}:${b}:token`), [
      hub(),
      bot,
    ] as const);
  /** The hub page's session token: in its HttpOnly cookie, which only the browser itself reads. */
  const cookieToken = async (bot = 'default') =>
    (await browser.context.cookies(hub())).find((c) => c.name === `sb_${bot}`)?.value;
  const sessionIdOf = async (token: string) => {
    const res = await fetch(`${hub()}/api/session`, { headers: { authorization: `Bearer ${token}` } });
    return ((await res.json()) as { session_id: string }).session_id;
  };

  it('opens the page, sends a message, sees the typing indicator and the reply', async () => {
    page = await browser.context.newPage();
    await page.goto(`${hub()}/`);
    await online(page);
    await replyShown(page, 'welcome to the web test bot');
    expect(await page.locator('.log').getAttribute('aria-live')).toBe('polite');
    expect(await page.locator('.log').getAttribute('role')).toBe('log');

    await send(page, 'hello from chromium');
    await replyShown(page, 'echo hello from chromium #1');
    await send(page, 'slow please');
    await page.locator('.typing', { hasText: 'is typing' }).waitFor();
    await replyShown(page, 'echo slow please #2');
    await page.locator('.typing', { hasText: /^$/ }).waitFor();
    expect(await conversation(page)).toEqual([
      'assistant:welcome to the web test bot',
      'user:hello from chromium',
      'assistant:echo hello from chromium #1',
      'user:slow please',
      'assistant:echo slow please #2',
    ]);
    expect(await cookieToken()).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('keeps the session in an HttpOnly, SameSite=Lax, 30-day cookie: no script on the page and no frame sees the token', async () => {
    const token = (await cookieToken())!;
    const cookie = (await browser.context.cookies(hub())).find((c) => c.name === 'sb_default')!;
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax', secure: false, path: '/' });
    const days = (cookie.expires * 1000 - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);
    // What a script on the page could read: neither document.cookie nor storage has it.
    const readable = await page.evaluate(() => ({
      cookie: document.cookie,
      storage: Object.keys(localStorage).map((k) => `${k}=${localStorage.getItem(k)}`),
    }));
    expect(JSON.stringify(readable)).not.toContain(token);
    // Nor any frame the page receives, from the first one on (a new tab of the same page).
    const tab = await browser.context.newPage();
    const received: string[] = [];
    tab.on('websocket', (ws) => ws.on('framereceived', (f) => received.push(String(f.payload))));
    await tab.goto(`${hub()}/`);
    await online(tab);
    await replyShown(tab, 'echo slow please #2');
    expect(received.some((f) => f.includes('"welcome"'))).toBe(true);
    expect(received.join('\n')).not.toContain(token);
    await tab.close();
  });

  it('shows the history after a reload, in the same session', async () => {
    const before = await conversation(page);
    const token = await cookieToken();
    await page.reload();
    await online(page);
    await replyShown(page, 'echo slow please #2');
    expect(await conversation(page)).toEqual(before);
    expect(await cookieToken()).toBe(token);
    await send(page, 'after reload');
    await replyShown(page, 'echo after reload #3');
  });

  it('continues the same conversation in a second tab, both ways', async () => {
    const second = await browser.context.newPage();
    await second.goto(`${hub()}/`);
    await online(second);
    await replyShown(second, 'echo after reload #3');
    expect(await conversation(second)).toEqual(await conversation(page));
    await send(second, 'from tab two');
    await replyShown(page, 'echo from tab two #4');
    expect(await page.locator('.msg.user', { hasText: exact('from tab two') }).count()).toBe(1);
    await second.close();
  });

  it('shows suggestions as buttons that send their value', async () => {
    await send(page, 'menu');
    await replyShown(page, 'pick one');
    const buttons = page.locator('.suggestions button');
    await buttons.first().waitFor();
    expect(await buttons.allTextContents()).toEqual(['Opening hours', 'Prices']);
    // Keyboard: focus the button and press Enter.
    await buttons.nth(1).focus();
    await page.keyboard.press('Enter');
    await replyShown(page, 'echo prices #6');
    expect(await buttons.count()).toBe(0);
  });

  it('grows a streamed reply from chunk frames, then shows the committed reply in its place', async () => {
    const sessionId = await sessionIdOf((await cookieToken())!);
    await send(page, 'slow6000 stream');
    // The bot takes its time: while it works, its reply streams in (as the LLM will publish it).
    const clientId = await page.locator('.msg.pending').getAttribute('data-client-id');
    const envelopeId = `web:${sessionId}:${clientId}`;
    const publish = (index: number, text: string) =>
      redis.publish(
        `${redisPrefix.prefix}bus:session:${sessionId}`,
        JSON.stringify({ type: 'turn.chunk', sessionId, envelopeId, index, text }),
      );
    await publish(0, 'Streaming');
    await page.locator('.msg.streaming', { hasText: exact('Streaming') }).waitFor();
    await publish(2, ' grows');
    await publish(1, ' text');
    await page.locator('.msg.streaming', { hasText: exact('Streaming text grows') }).waitFor();
    await replyShown(page, 'echo slow6000 stream #7');
    expect(await page.locator('.msg.streaming').count()).toBe(0);
  });

  it('goes on after the server is killed and restarted while the page is open', async () => {
    await server.stop('SIGKILL');
    await page.locator('.status[data-state="offline"]').waitFor({ timeout: 15_000 });
    expect(await page.locator('.status').textContent()).toMatch(/^Offline/);
    // Written while the server is down: kept, and sent once it is back.
    await send(page, 'while down');
    await page.locator('.msg.pending', { hasText: 'while down' }).waitFor();

    server = new ServerProcess(serverEnv(port));
    await server.start();
    await online(page, 30_000);
    await replyShown(page, 'echo while down #8', 30_000);
    await send(page, 'and after');
    await replyShown(page, 'echo and after #9');
    const users = await page.locator('.msg.user').allTextContents();
    expect(users.filter((t) => t === 'while down')).toHaveLength(1);
    expect(await page.locator('.msg.pending').count()).toBe(0);
  });

  it('starts a new conversation, and other tabs follow it', async () => {
    // A browser of its own: its own conversation and cookie, whatever ran before (so the test
    // also runs alone, e.g. repeated with -t).
    const own = await launchChromium();
    const ownCookie = async () =>
      (await own.context.cookies(hub())).find((c) => c.name === 'sb_default')?.value;
    try {
      const tab = await own.context.newPage();
      await tab.goto(`${hub()}/`);
      await online(tab);
      await replyShown(tab, 'welcome to the web test bot');
      await send(tab, 'before');
      await replyShown(tab, 'echo before #1');
      const other = await own.context.newPage();
      await other.goto(`${hub()}/`);
      await online(other);
      await replyShown(other, 'echo before #1');
      const oldToken = await ownCookie();

      await tab.locator('button.new').click();
      await tab.locator('.msg.assistant').first().waitFor();
      await online(tab);
      expect(await conversation(tab)).toEqual(['assistant:welcome to the web test bot']);
      const newToken = await ownCookie();
      expect(newToken).not.toBe(oldToken);
      await send(tab, 'fresh start');
      await replyShown(tab, 'echo fresh start #1');

      // The other tab moves to the new conversation too.
      await replyShown(other, 'echo fresh start #1');
      expect(await conversation(other)).toEqual(await conversation(tab));
      // The old session is over: its token no longer opens anything.
      const res = await fetch(`${hub()}/api/session`, { headers: { authorization: `Bearer ${oldToken}` } });
      expect(res.status).toBe(401);
    } finally {
      await own.close();
    }
  });

  describe('embedded on a page of another origin', () => {
    let site: http.Server;
    let siteUrl: string;

    /** What the shop's page does after its own login: hands the widget the JWT its server made. */
    const signIn = async (shop: Page, customer: string) => {
      const jwt = await new SignJWT({ sub: customer, name: 'Kim' })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer(JWT_ISSUER)
        .setAudience(JWT_AUDIENCE)
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(JWT_SECRET));
      return shop.evaluate(
        (token) =>
          (
            window as unknown as {
              Switchboard: { authenticate(jwt: string): Promise<{ authLevel: string; userId: string }> };
            }
          ).Switchboard.authenticate(token),
        jwt,
      );
    };

    beforeAll(async () => {
      site = http.createServer((_req, res) => {
        // A strict policy, as careful sites have: the hub is allowed for the script and the
        // socket, and nothing inline but the page's own nonced style.
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-security-policy': `default-src 'self'; script-src ${hub()}; connect-src ws://127.0.0.1:${port}; style-src 'nonce-shop'`,
        });
        res.end(`<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shop</title><style nonce="shop">button { background: red !important; }</style></head>
<body><h1>A shop</h1><p>Products and so on.</p>
<script src="${hub()}/widget.js" data-bot="support"></script></body></html>`);
      });
      await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
      siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      // The browser's keep-alive connections would hold the close for a minute.
      site?.closeAllConnections();
      await new Promise((resolve) => site?.close(resolve));
    });

    it('opens a floating chat from the bubble and talks to the bot named in data-bot', async () => {
      const shop = await browser.context.newPage();
      await shop.goto(`${siteUrl}/`);
      const launcher = shop.locator('.launcher');
      await launcher.waitFor();
      // Styled (its own stylesheet applies under the page's CSP) and untouched by the page's CSS.
      expect(await launcher.evaluate((el) => getComputedStyle(el).position)).toBe('fixed');
      expect(await launcher.evaluate((el) => getComputedStyle(el).backgroundColor)).toBe('rgb(11, 92, 173)');
      expect(await launcher.getAttribute('aria-expanded')).toBe('false');
      // Its icon is an inline SVG drawn in the text colour, not an emoji character (an empty box
      // where no emoji font is installed): no text at all, and a visible, sized <svg>.
      expect((await launcher.textContent())?.trim()).toBe('');
      const bubbleIcon = launcher.locator('svg');
      expect(await bubbleIcon.count()).toBe(1);
      expect(await bubbleIcon.getAttribute('aria-hidden')).toBe('true');
      expect(await bubbleIcon.evaluate((el) => el.namespaceURI)).toBe('http://www.w3.org/2000/svg');
      const bubbleBox = await bubbleIcon.boundingBox();
      expect(bubbleBox?.width).toBeGreaterThan(16);
      expect(bubbleBox?.height).toBeGreaterThan(16);
      await launcher.click();
      expect(await launcher.getAttribute('aria-expanded')).toBe('true');
      const close = shop.locator('button.close');
      expect(await close.getAttribute('aria-label')).toBe('Close chat');
      expect((await close.textContent())?.trim()).toBe('');
      expect(await close.locator('svg path').count()).toBe(1);
      expect((await close.locator('svg').boundingBox())?.width).toBeGreaterThan(8);
      await online(shop);
      await replyShown(shop, 'Support here.');
      expect(await shop.locator('h2').textContent()).toBe('Support desk');
      await send(shop, 'my order is late');
      await replyShown(shop, 'A colleague will answer.');
      // The token lives in the shop's storage, keyed by the hub and the bot.
      expect(await storedToken(shop, 'support')).toMatch(/^[A-Za-z0-9_-]{43}$/);
      // Escape closes the panel and gives the focus back to the bubble.
      await shop.locator('textarea').focus();
      await shop.keyboard.press('Escape');
      expect(await launcher.getAttribute('aria-expanded')).toBe('false');
      expect(await shop.evaluate(() => document.activeElement?.getAttribute('data-switchboard'))).toBe(
        'support',
      );
      await shop.close();
    });

    it('fills a phone-sized screen when open', async () => {
      const phone = await browser.context.newPage();
      await phone.setViewportSize({ width: 375, height: 667 });
      await phone.goto(`${siteUrl}/`);
      await phone.locator('.launcher').click();
      await online(phone);
      // The same visitor: the conversation from before is there.
      await replyShown(phone, 'A colleague will answer.');
      const box = await phone.locator('.panel').boundingBox();
      expect(box).toEqual({ x: 0, y: 0, width: 375, height: 667 });
      await phone.close();
    });

    it('signs the chat in when the page calls Switchboard.authenticate with its JWT', async () => {
      const shop = await browser.context.newPage();
      await shop.goto(`${siteUrl}/`);
      await shop.locator('.launcher').click();
      await online(shop);
      const answers = shop.locator('.msg.assistant', { hasText: exact('A colleague will answer.') });
      await answers.first().waitFor();
      const shown = await answers.count();
      // A second tab of the shop, on the same session (its token in the shop's storage).
      const other = await browser.context.newPage();
      let otherSockets = 0;
      other.on('websocket', () => {
        otherSockets++;
      });
      await other.goto(`${siteUrl}/`);
      await other.locator('.launcher').click();
      await online(other);
      expect(otherSockets).toBe(1);
      const before = (await storedToken(shop, 'support'))!;
      const sessionId = await sessionIdOf(before);
      const result = await signIn(shop, 'shop-customer-7');
      expect(result.authLevel).toBe('authenticated');
      const after = (await storedToken(shop, 'support'))!;
      expect(after).not.toBe(before);
      const res = await fetch(`${hub()}/api/session`, { headers: { authorization: `Bearer ${after}` } });
      expect(await res.json()).toMatchObject({
        session_id: sessionId,
        auth_level: 'authenticated',
        user_id: result.userId,
      });
      const old = await fetch(`${hub()}/api/session`, { headers: { authorization: `Bearer ${before}` } });
      expect(old.status).toBe(401);
      // The same conversation goes on in the same panel.
      await send(shop, 'signed in now');
      await answers.nth(shown).waitFor({ timeout: 15_000 });
      // The other tab's socket held the old token: the hub closed it (4410), and the tab went on
      // with the new token the first one stored, in the same conversation.
      await until(
        () => otherSockets,
        (n) => n >= 2,
        15_000,
      );
      await online(other);
      await send(other, 'from the other tab');
      await until(
        async () => {
          const history = await fetch(`${hub()}/api/session/messages`, {
            headers: { authorization: `Bearer ${after}` },
          });
          return ((await history.json()) as { messages: { text: string }[] }).messages.map((m) => m.text);
        },
        (texts) => texts.includes('from the other tab'),
        15_000,
      );
      await other.locator('.msg.user', { hasText: exact('from the other tab') }).waitFor();
      await other.close();
      await shop.close();
    });

    it('keeps the other tab in the conversation when the signing tab stores its new token late', async () => {
      // A browser of its own: a new visitor, an anonymous session of their own.
      const own = await launchChromium();
      const db = new pg.Client({ connectionString: database.url });
      await db.connect();
      try {
        const shop = await own.context.newPage();
        // The hub's `authenticated` answer (and what follows it) reaches the shop's tab only when
        // the test lets it: the hub closes the other tab's socket (4410) before that tab can know
        // the new token, which a busy browser also does now and then.
        let release!: () => void;
        const held = new Promise<void>((resolve) => {
          release = resolve;
        });
        await shop.routeWebSocket(/\/ws$/, (ws) => {
          const server = ws.connectToServer();
          let chain = Promise.resolve();
          server.onMessage((message) => {
            const gate =
              typeof message === 'string' && message.includes('"type":"authenticated"') ? held : undefined;
            chain = chain.then(() => gate).then(() => ws.send(message));
          });
        });
        await shop.goto(`${siteUrl}/`);
        await shop.locator('.launcher').click();
        await online(shop);
        await replyShown(shop, 'Support here.');
        const other = await own.context.newPage();
        const otherSockets: string[] = [];
        other.on('websocket', (socket) => otherSockets.push(socket.url()));
        await other.goto(`${siteUrl}/`);
        await other.locator('.launcher').click();
        await online(other);
        const sessionId = await sessionIdOf((await storedToken(shop, 'support'))!);
        const sessions = async () =>
          Number(
            (await db.query<{ n: string }>("SELECT count(*) AS n FROM sessions WHERE bot = 'support'"))
              .rows[0]!.n,
          );
        const sessionsBefore = await sessions();

        const signedIn = signIn(shop, 'shop-customer-8');
        // Until the other tab has started over (a third socket and a session of its own) or has
        // had ample time to.
        await until(
          async () => ({ sockets: otherSockets.length, sessions: await sessions() }),
          (seen) => seen.sockets >= 3 && seen.sessions > sessionsBefore,
          2_000,
        ).catch(() => undefined);
        release();
        expect((await signedIn).authLevel).toBe('authenticated');

        // The other tab follows the new token into the same conversation; nothing new was started.
        await until(
          () => otherSockets.length,
          (n) => n >= 2,
          15_000,
        );
        await online(other);
        await send(other, 'still here');
        await replyShown(other, 'A colleague will answer.');
        const token = (await storedToken(other, 'support'))!;
        const res = await fetch(`${hub()}/api/session`, { headers: { authorization: `Bearer ${token}` } });
        expect(await res.json()).toMatchObject({ session_id: sessionId, auth_level: 'authenticated' });
        expect(await sessions()).toBe(sessionsBefore);
      } finally {
        await db.end();
        await own.close();
      }
    });
  });
});
