import { describe, expect, it } from 'vitest';
import { isPrivateAddress, safeGet } from '../../src/files/safe-fetch.ts';

/** Which addresses the hub never fetches a bot's media or a person's link from (safeGet). */
describe('isPrivateAddress', () => {
  it.each([
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    '::',
    'fd00:ec2::254',
    'fe80::1',
    // IPv4-mapped forms of private IPv4 addresses (BlockList checks them against the IPv4 rules).
    '::ffff:127.0.0.1',
    '::ffff:a9fe:a9fe',
    '::ffff:10.0.0.1',
    '64:ff9b::a00:1',
  ])('%s is private', (address) => {
    expect(isPrivateAddress(address)).toBe(true);
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '93.184.215.14',
    '151.101.1.69',
    '203.0.113.9',
    '2606:4700:4700::1111',
    '2001:4860:4860::8888',
    '::ffff:8.8.8.8',
  ])('%s is public', (address) => {
    expect(isPrivateAddress(address)).toBe(false);
  });

  it('a public IPv4 address is fetched from, not refused as private', async () => {
    // 192.0.2.1 (TEST-NET-1) answers nobody: whatever the failure, it is not a refusal to try.
    const failure = await safeGet('https://192.0.2.1/picture.png', { timeoutMs: 300, allowHosts: [] }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(failure?.message ?? '').not.toMatch(/private address/);
  });
});
