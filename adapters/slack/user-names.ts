import type { WebClient } from '@slack/web-api';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../../src/logger.ts';

/** How long the gateway waits for `users.info` before going on without the name. */
export const NAME_LOOKUP_TIMEOUT_MS = 800;
const NAMES_KEPT = 10_000;
const NAME_TTL_MS = 3_600_000;
const FAILED_LOOKUP_TTL_MS = 300_000;

/**
 * The names of workspace users, for the person's user record: events carry only the user id, so
 * the gateway asks `users.info` (scope `users:read`) once an hour per person. It never holds a
 * message up for long: a lookup that fails or takes longer than NAME_LOOKUP_TIMEOUT_MS gives no
 * name, and the message goes on without one.
 */
export class UserNames {
  private readonly names = new LRUCache<string, { name: string | undefined }>({
    max: NAMES_KEPT,
    ttl: NAME_TTL_MS,
  });

  constructor(
    private readonly client: WebClient,
    private readonly logger: Logger,
  ) {}

  async of(teamId: string, user: string): Promise<string | undefined> {
    const key = `${teamId}:${user}`;
    const known = this.names.get(key);
    if (known) return known.name;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), NAME_LOOKUP_TIMEOUT_MS);
    });
    const lookup = this.client.users
      .info({ user })
      .then((r) => {
        const profile = r.user?.profile;
        const name =
          profile?.real_name || r.user?.real_name || profile?.display_name || r.user?.name || undefined;
        this.names.set(key, { name });
        return name;
      })
      .catch((err: Error) => {
        // A missing scope does not pass by itself: asked again only after a while.
        this.names.set(key, { name: undefined }, { ttl: FAILED_LOOKUP_TTL_MS });
        this.logger.warn({ event: 'slack.user_lookup_failed', user, err: err.message });
        return undefined;
      });
    try {
      return await Promise.race([lookup, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}
