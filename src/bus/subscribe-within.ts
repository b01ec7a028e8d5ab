import type { Bus } from './bus.ts';

/**
 * How long a request may take to subscribe. With Redis away the subscriber's commands wait for its
 * return (they must not be dropped: the connection resubscribes on its own), which a request
 * cannot: past this it is answered without the subscription.
 */
export const SUBSCRIBE_TIMEOUT_MS = 5_000;

/**
 * `bus.subscribe` bounded by `SUBSCRIBE_TIMEOUT_MS`: the function that ends the subscription, or
 * undefined when it did not come in time (the bus is away). A subscription that comes later is
 * dropped; one that fails throws, as `bus.subscribe` does.
 */
export async function subscribeWithin(
  bus: Bus,
  topic: string,
  handler: (message: unknown) => void,
): Promise<(() => Promise<void>) | undefined> {
  const subscribing = bus.subscribe(topic, handler);
  let late: NodeJS.Timeout | undefined;
  const unsubscribe = await Promise.race([
    subscribing,
    new Promise<undefined>((resolve) => {
      late = setTimeout(() => resolve(undefined), SUBSCRIBE_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(late));
  if (!unsubscribe) subscribing.then(dropSubscription, () => undefined);
  return unsubscribe;
}

/** Ends a subscription without waiting on it: an answer never waits for Redis. */
export const dropSubscription = (off: () => Promise<void>): void => void off().catch(() => undefined);
