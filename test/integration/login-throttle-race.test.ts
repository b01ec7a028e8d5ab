import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_FAILURES_PER_EMAIL, MAX_FAILURES_PER_IP } from '../../src/agents/login-throttle.ts';
import { agentClient, createAgentVia } from '../helpers/agents.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-throttle-race-0123456789';
const PASSWORD = 'correct horse battery';
/** Sign-ins sent at once: far more than the throttle lets through. */
const AT_ONCE = 30;

const login = (url: string, from: string, email: string, password: string) =>
  agentClient(url).call('POST', '/api/agent/login', {
    body: { email, password },
    headers: { 'x-forwarded-for': from },
  });

describe('the sign-in throttle under guesses sent at once', () => {
  let running: RunningHub;

  beforeAll(async () => {
    // Each test signs in from an address of its own (one proxy in front, as X-Forwarded-For says).
    running = await startTestHub({ adminToken: ADMIN_TOKEN, trustProxy: 1 });
  });
  afterAll(async () => {
    await running?.stop();
  });

  it(`checks at most ${MAX_FAILURES_PER_EMAIL} passwords of one address, however many arrive together`, async () => {
    await createAgentVia(running.url, ADMIN_TOKEN, { name: 'Flo', email: 'flo@example.com' });
    const answers = await Promise.all(
      Array.from({ length: AT_ONCE }, (_, i) =>
        login(running.url, '203.0.113.1', 'flo@example.com', `guess ${i}`),
      ),
    );
    const statuses = answers.map((a) => a.status);
    // Each 401 is a password that was checked: a guess the attacker learnt the answer to.
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(MAX_FAILURES_PER_EMAIL);
    expect(statuses.filter((s) => s !== 401 && s !== 429)).toEqual([]);
    // Guesses sent one by one afterwards add up to the same limit for the window: then 429.
    let checked = statuses.filter((s) => s === 401).length;
    for (let i = 0; i <= MAX_FAILURES_PER_EMAIL; i++) {
      const status = (await login(running.url, '203.0.113.1', 'flo@example.com', `later ${i}`)).status;
      expect([401, 429]).toContain(status);
      if (status === 401) checked++;
    }
    expect(checked).toBe(MAX_FAILURES_PER_EMAIL);
    expect((await login(running.url, '203.0.113.1', 'flo@example.com', PASSWORD)).status).toBe(429);
  });

  it('still signs in with the right password after fewer failures than the limit, and forgets them', async () => {
    await createAgentVia(running.url, ADMIN_TOKEN, { name: 'Gus', email: 'gus@example.com' });
    const from = '203.0.113.2';
    for (let i = 0; i < MAX_FAILURES_PER_EMAIL - 1; i++)
      expect((await login(running.url, from, 'gus@example.com', `wrong ${i}`)).status).toBe(401);
    expect((await login(running.url, from, 'gus@example.com', PASSWORD)).status).toBe(200);
    for (let i = 0; i < MAX_FAILURES_PER_EMAIL - 1; i++)
      expect((await login(running.url, from, 'gus@example.com', `wrong again ${i}`)).status).toBe(401);
    expect((await login(running.url, from, 'gus@example.com', PASSWORD)).status).toBe(200);
  });

  it(`checks at most ${MAX_FAILURES_PER_IP} passwords from one client, spread over many addresses at once`, async () => {
    const answers = await Promise.all(
      Array.from({ length: MAX_FAILURES_PER_IP + 10 }, (_, i) =>
        login(running.url, '203.0.113.3', `stranger-${i}@example.com`, 'a guess at something'),
      ),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(MAX_FAILURES_PER_IP);
    expect(statuses.filter((s) => s !== 401 && s !== 429)).toEqual([]);
  });
});
