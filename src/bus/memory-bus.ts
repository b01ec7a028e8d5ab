import { EventEmitter } from 'node:events';
import type { Bus } from './bus.ts';

/** The embedded bus: one process, so an EventEmitter is the whole of pub/sub. */
export function createMemoryBus(): Bus {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  return {
    async publish(topic, message) {
      // Subscribers get their own copy, as they would through Redis.
      const copy = structuredClone(message);
      queueMicrotask(() => emitter.emit(topic, copy));
    },
    async subscribe(topic, handler) {
      emitter.on(topic, handler);
      return async () => {
        emitter.off(topic, handler);
      };
    },
    // One process: nothing between publisher and subscriber is ever lost.
    onResubscribed: () => () => undefined,
    async close() {
      emitter.removeAllListeners();
    },
  };
}
