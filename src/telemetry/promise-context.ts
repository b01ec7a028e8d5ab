import { AsyncLocalStorage } from 'node:async_hooks';
import { promiseHooks } from 'node:v8';
import { type Context, type ContextManager, ROOT_CONTEXT } from '@opentelemetry/api';

/** Where a promise keeps the context it was made in (only when that is not the root one). */
const CONTEXT = Symbol('switchboard.trace-context');

type Carrier = { [CONTEXT]?: Context };

/**
 * The active context, carried across `await` by V8's promise hooks instead of `AsyncLocalStorage`.
 *
 * Why: on Node 20, `AsyncLocalStorage` (the SDK's context manager) turns on `async_hooks` for the
 * whole process, and from then on every promise pays for it: on a promise-heavy loop it costs about
 * 2.5× the plain time, and the hub's processes make several hundred promises a message. Two bare V8
 * promise hooks do the same for promises for about a third of that (bench/run.ts `tracing`;
 * README "Tracing"): a promise made while a context is active keeps it (`init`), and its reaction
 * (the code after an `await`, a `.then` callback) runs with it (`before`).
 *
 * What it does not carry: callbacks of timers, sockets and `process.nextTick` that no promise
 * reaction leads to run with whatever context the last reaction left (AsyncLocalStorage gives them
 * the one their resource was made in). The hub starts no span and reads no context in such a
 * callback without an explicit parent (the group commit's `setImmediate` names its parents).
 * There is no `after` hook: it would reset the context after each reaction, and V8 makes every
 * reaction much slower once one is set (more than AsyncLocalStorage costs).
 */
export class PromiseContextManager implements ContextManager {
  private current: Context = ROOT_CONTEXT;
  private stop: ReturnType<typeof promiseHooks.onInit>[] = [];

  active(): Context {
    return this.current;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    context: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    const previous = this.current;
    this.current = context;
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.current = previous;
    }
  }

  bind<T>(context: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const manager = this;
    const fn = target as unknown as (...args: unknown[]) => unknown;
    return function (this: unknown, ...args: unknown[]) {
      return manager.with(context, () => fn.apply(this, args));
    } as unknown as T;
  }

  enable(): this {
    if (this.stop.length > 0) return this;
    this.stop = [
      promiseHooks.onInit((promise: Promise<unknown>) => {
        const context = this.current;
        if (context !== ROOT_CONTEXT) (promise as Carrier)[CONTEXT] = context;
      }),
      promiseHooks.onBefore((promise: Promise<unknown>) => {
        this.current = (promise as Carrier)[CONTEXT] ?? ROOT_CONTEXT;
      }),
    ];
    return this;
  }

  disable(): this {
    for (const stop of this.stop) stop();
    this.stop = [];
    this.current = ROOT_CONTEXT;
    return this;
  }
}

/**
 * The SDK's way, AsyncLocalStorage, for `SWITCHBOARD_TRACE_CONTEXT=async-local-storage`: it also
 * carries the context into timer, socket and `nextTick` callbacks, at its price (see above).
 */
export class AsyncLocalStorageContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>();

  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    context: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.storage.run(context, () => fn.call(thisArg, ...args));
  }

  bind<T>(context: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const manager = this;
    const fn = target as unknown as (...args: unknown[]) => unknown;
    return function (this: unknown, ...args: unknown[]) {
      return manager.with(context, () => fn.apply(this, args));
    } as unknown as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.storage.disable();
    return this;
  }
}
