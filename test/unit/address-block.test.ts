import { describe, expect, it } from 'vitest';
import { addressBlock } from '../../src/limits/address-block.ts';

describe('addressBlock: what a per-address limit counts', () => {
  it.each([
    ['203.0.113.7', '203.0.113.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002::ffff', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['2001:db8:1:2::', '2001:db8:1:2::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['::ffff:c000:201', '192.0.2.1'],
    ['unknown', 'unknown'],
  ])('%s → %s', (address, block) => {
    expect(addressBlock(address)).toBe(block);
  });

  it('puts every address of one /64 in one block, and the next /64 in another', () => {
    expect(addressBlock('2001:db8:aa:bb:1::1')).toBe(addressBlock('2001:db8:aa:bb:ffff:ffff:ffff:ffff'));
    expect(addressBlock('2001:db8:aa:bb::1')).not.toBe(addressBlock('2001:db8:aa:bc::1'));
  });
});
