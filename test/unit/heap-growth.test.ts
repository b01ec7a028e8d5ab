import { describe, expect, it } from 'vitest';
import { deferWasmTierUp, EMBEDDED_WASM_TIERING_BUDGET, limitHeapGrowth } from '../../src/hub/heap.ts';

describe('the embedded hub heap growth', () => {
  it('is left to the operator who set --heap-growing-percent in NODE_OPTIONS or on the command line', () => {
    expect(limitHeapGrowth(50, '--max-old-space-size=512 --heap-growing-percent=30')).toBe(false);
    expect(limitHeapGrowth(50, '--heap_growing_percent=30')).toBe(false);
  });

  it('is set otherwise', () => {
    expect(limitHeapGrowth(50, '--max-old-space-size=512')).toBe(true);
  });
});

describe("the embedded PostgreSQL's WebAssembly tiering", () => {
  it('is left to the operator who chose the tiers with a V8 switch of their own', () => {
    for (const given of [
      '--wasm-tiering-budget=5000',
      '--wasm_tiering_budget=5000',
      '--liftoff-only',
      '--no-liftoff',
      '--no-wasm-tier-up',
    ])
      expect(deferWasmTierUp(EMBEDDED_WASM_TIERING_BUDGET, `--max-old-space-size=512 ${given}`), given).toBe(
        false,
      );
  });

  it('is set otherwise', () => {
    expect(
      deferWasmTierUp(EMBEDDED_WASM_TIERING_BUDGET, '--max-old-space-size=512 --heap-growing-percent=30'),
    ).toBe(true);
  });
});
