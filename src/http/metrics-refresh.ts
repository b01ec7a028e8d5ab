/** A scrape within this long of the last refresh answers with its values: no query, no Redis call. */
export const METRICS_CACHE_MS = 5_000;
/**
 * How long a scrape waits for a refresh under way (a database whose pool is busy answers late),
 * before it answers with the values it has; the refresh goes on, and the next scrape gets it.
 */
export const METRICS_REFRESH_WAIT_MS = 2_000;

export interface CachedRefreshOptions {
  maxAgeMs?: number;
  waitMs?: number;
  now?: () => number;
}

/**
 * `/metrics`' refresh (the gauges read from the database and Redis at scrape time), run at most
 * once per METRICS_CACHE_MS however many scrapers ask, and once at a time: scrapes that come
 * while one runs share it. A failed refresh counts as one too, so an outage is not asked again
 * at every scrape.
 */
export function cachedRefresh(
  refresh: () => Promise<void>,
  onError: (err: Error) => void,
  options: CachedRefreshOptions = {},
): () => Promise<void> {
  const { maxAgeMs = METRICS_CACHE_MS, waitMs = METRICS_REFRESH_WAIT_MS, now = Date.now } = options;
  let running: Promise<void> | undefined;
  let finishedAt = Number.NEGATIVE_INFINITY;
  return async () => {
    if (!running && now() - finishedAt < maxAgeMs) return;
    running ??= refresh()
      .catch((err: unknown) => onError(err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        finishedAt = now();
        running = undefined;
      });
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, waitMs);
    });
    try {
      await Promise.race([running, waited]);
    } finally {
      clearTimeout(timer);
    }
  };
}
