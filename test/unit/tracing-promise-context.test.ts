import { setTimeout as sleep } from 'node:timers/promises';
import { type Context, createContextKey, ROOT_CONTEXT } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AsyncLocalStorageContextManager,
  PromiseContextManager,
} from '../../src/telemetry/promise-context.ts';

const KEY = createContextKey('test');
const ctx = (value: string): Context => ROOT_CONTEXT.setValue(KEY, value);

/**
 * The context managers the SDK registers (src/telemetry/sdk.ts, `SWITCHBOARD_TRACE_CONTEXT`): the
 * active context across `await`.
 */
describe.each([
  ['PromiseContextManager', () => new PromiseContextManager()],
  ['AsyncLocalStorageContextManager', () => new AsyncLocalStorageContextManager()],
])('%s', (_name, make) => {
  const manager = make().enable();
  const value = () => manager.active().getValue(KEY);
  afterEach(() => {
    manager.disable().enable();
  });

  it('carries the context across await, timers awaited as promises and .then callbacks', async () => {
    const seen = await manager.with(ctx('a'), async () => {
      const out = [value()];
      await null;
      out.push(value());
      await sleep(5);
      out.push(value());
      out.push(await Promise.resolve().then(() => value()));
      await new Promise((resolve) => setImmediate(resolve));
      out.push(value());
      return out;
    });
    expect(seen).toEqual(['a', 'a', 'a', 'a', 'a']);
    expect(value()).toBeUndefined();
  });

  it('keeps interleaved chains apart, and nested contexts restore the outer one', async () => {
    const chain = (name: string, delays: number[]) =>
      manager.with(ctx(name), async () => {
        const out: unknown[] = [];
        for (const ms of delays) {
          await sleep(ms);
          out.push(value());
          const inner = await manager.with(ctx(`${name}.inner`), async () => {
            await sleep(1);
            return value();
          });
          out.push(inner, value());
        }
        return out;
      });
    const [a, b] = await Promise.all([chain('a', [3, 1, 2]), chain('b', [1, 3, 1])]);
    expect(a).toEqual(Array(3).fill(['a', 'a.inner', 'a']).flat());
    expect(b).toEqual(Array(3).fill(['b', 'b.inner', 'b']).flat());
  });

  it('a promise made outside any context continues in the root one', async () => {
    const outside = sleep(5).then(() => value());
    const inside = manager.with(ctx('c'), async () => {
      await sleep(1);
      return value();
    });
    expect(await Promise.all([outside, inside])).toEqual([undefined, 'c']);
  });

  it('bind runs a function in a context wherever it is called', async () => {
    const bound = manager.bind(ctx('d'), () => value());
    expect(bound()).toBe('d');
    expect(value()).toBeUndefined();
  });
});
