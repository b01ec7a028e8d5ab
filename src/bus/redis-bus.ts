import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import type { RedisWrites } from '../redis-writes.ts';
import type { Bus } from './bus.ts';

/**
 * Pub/sub over Redis. One subscriber connection per process; topics are reference-counted so
 * that many local listeners of one topic cost one Redis subscription.
 */
export function createRedisBus(
  publisher: Redis,
  subscriber: Redis,
  /** `writes`: this process's batched writes (`RedisWrites`), which its notices then join. */
  options: { prefix: string; logger: Logger; writes?: RedisWrites },
): Bus {
  const listeners = new Map<string, Set<(message: unknown) => void>>();
  /**
   * The Redis SUBSCRIBE of each topic while it is in flight (or failed), so that a second local
   * subscriber also waits for it; a topic subscribed keeps nothing here (a gateway holds one topic
   * per open session: tens of thousands).
   */
  const subscribed = new Map<string, Promise<unknown>>();
  const channel = (topic: string) => `${options.prefix}bus:${topic}`;
  const topicOf = (ch: string) => ch.slice(options.prefix.length + 4);

  subscriber.on('message', (ch: string, raw: string) => {
    const handlers = listeners.get(topicOf(ch));
    if (!handlers) return;
    let message: unknown;
    try {
      message = JSON.parse(raw);
    } catch {
      options.logger.warn({ event: 'bus.bad_message', channel: ch });
      return;
    }
    for (const handler of handlers) handler(message);
  });

  return {
    async publish(topic, message) {
      if (options.writes) await options.writes.publish(channel(topic), JSON.stringify(message));
      else await publisher.publish(channel(topic), JSON.stringify(message));
    },
    async subscribe(topic, handler) {
      let handlers = listeners.get(topic);
      if (!handlers) {
        handlers = new Set();
        listeners.set(topic, handlers);
        const subscribing = subscriber.subscribe(channel(topic));
        subscribed.set(topic, subscribing);
        subscribing.then(
          () => {
            if (subscribed.get(topic) === subscribing) subscribed.delete(topic);
          },
          () => undefined,
        );
      }
      handlers.add(handler);
      await subscribed.get(topic);
      return async () => {
        const set = listeners.get(topic);
        if (!set) return;
        set.delete(handler);
        if (set.size === 0) {
          listeners.delete(topic);
          subscribed.delete(topic);
          await subscriber.unsubscribe(channel(topic)).catch(() => undefined);
        }
      };
    },
    async close() {
      listeners.clear();
      subscribed.clear();
    },
  };
}
