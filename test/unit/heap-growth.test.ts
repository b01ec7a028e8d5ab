import { describe, expect, it } from 'vitest';
import { limitHeapGrowth } from '../../src/hub/heap.ts';

describe('the embedded hub heap growth', () => {
  it('is left to the operator who set --heap-growing-percent in NODE_OPTIONS or on the command line', () => {
    expect(limitHeapGrowth(50, '--max-old-space-size=512 --heap-growing-percent=30')).toBe(false);
    expect(limitHeapGrowth(50, '--heap_growing_percent=30')).toBe(false);
  });

  it('is set otherwise', () => {
    expect(limitHeapGrowth(50, '--max-old-space-size=512')).toBe(true);
  });
});
