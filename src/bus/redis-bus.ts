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

  const resubscribed = new Set<() => void>();
  /** When the subscriber's connection was lost after it had been ready (undefined: not lost). */
  let lostAt: number | undefined;
  let everReady = subscriber.status === 'ready';
  subscriber.on('close', () => {
    if (everReady) lostAt ??= Date.now();
  });
  subscriber.on('ready', () => {
    everReady = true;
    const since = lostAt;
    if (since === undefined) return;
    lostAt = undefined;
    // ioredis sent every topic's SUBSCRIBE again as the connection became ready; a PING behind
    // them on the same connection is answered once Redis has taken them, so a listener's catch-up
    // reads PostgreSQL only when the notices of anything newer are sure to arrive.
    subscriber.ping().then(
      () => {
        options.logger.info({
          event: 'bus.resubscribed',
          topics: listeners.size,
          downMs: Date.now() - since,
        });
        for (const listener of resubscribed) listener();
      },
      () => {
        // Lost again before it answered: the next 'ready' tells the listeners.
        lostAt ??= since;
      },
    );
  });

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
    onResubscribed(listener) {
      resubscribed.add(listener);
      return () => {
        resubscribed.delete(listener);
      };
    },
    async close() {
      resubscribed.clear();
      listeners.clear();
      subscribed.clear();
    },
  };
}
