import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_FAILURES_PER_MINUTE } from '../../src/http/admin-auth.ts';
import { type RunningHub, startTestHub } from '../helpers/hub.ts';

const ADMIN_TOKEN = 'operator-secret-for-the-ipv6-limit-0123456789';
const SESSIONS_PER_MINUTE = 5;

/** The `n`th address of one IPv6 /64 (an ISP hands a customer a /64 or more: all theirs). */
const inOne64 = (n: number) => `2001:db8:1234:5678:${(n + 1).toString(16)}::${(n * 7 + 1).toString(16)}`;

/**
 * Limits kept per client address count an IPv6 client by its /64: one home or server has every
 * address of at least that block, so counting each address alone gives it 2^64 counts.
 */
describe('per-address limits and IPv6', () => {
  let running: RunningHub;
  beforeAll(async () => {
    // One proxy in front: X-Forwarded-For names the client.
    running = await startTestHub({
      adminToken: ADMIN_TOKEN,
      trustProxy: 1,
      sessionCreatePerMinute: SESSIONS_PER_MINUTE,
    });
  });
  afterAll(async () => running?.stop());

  const from = (address: string, init: RequestInit & { headers?: Record<string, string> } = {}) => ({
    ...init,
    headers: { ...init.headers, 'x-forwarded-for': address },
  });

  it('counts wrong operator tokens from addresses of one /64 together', async () => {
    const statuses: number[] = [];
    for (let i = 0; i <= ADMIN_FAILURES_PER_MINUTE; i++)
      statuses.push(
        (
          await fetch(
            `${running.url}/api/admin/sessions`,
            from(inOne64(i), { headers: { authorization: `Bearer wrong-guess-${i}` } }),
          )
        ).status,
      );
    expect(statuses.slice(0, ADMIN_FAILURES_PER_MINUTE)).toEqual(Array(ADMIN_FAILURES_PER_MINUTE).fill(401));
    expect(statuses[ADMIN_FAILURES_PER_MINUTE]).toBe(429);
    // Another /64 is someone else.
    const other = await fetch(
      `${running.url}/api/admin/sessions`,
      from('2001:db8:1234:9999::1', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }),
    );
    expect(other.status).toBe(200);
  });

  it('counts sessions opened from addresses of one /64 together', async () => {
    const statuses: number[] = [];
    for (let i = 0; i <= SESSIONS_PER_MINUTE; i++)
      statuses.push(
        (
          await fetch(
            `${running.url}/api/session`,
            from(inOne64(100 + i).replace(':5678:', ':abcd:'), { method: 'POST' }),
          )
        ).status,
      );
    expect(statuses.slice(0, SESSIONS_PER_MINUTE)).toEqual(Array(SESSIONS_PER_MINUTE).fill(201));
    expect(statuses[SESSIONS_PER_MINUTE]).toBe(429);
  });

  it('still counts IPv4 addresses one by one', async () => {
    for (let i = 0; i <= SESSIONS_PER_MINUTE; i++)
      expect(
        (await fetch(`${running.url}/api/session`, from(`198.51.100.${i + 1}`, { method: 'POST' }))).status,
      ).toBe(201);
  });
});
