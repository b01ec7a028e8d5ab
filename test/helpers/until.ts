/**
 * Polls `probe` until `done` accepts its value, and returns that value; throws with the last
 * value seen when `timeoutMs` passes first. For waiting on what other processes do.
 */
export async function until<T>(
  probe: () => T | Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 60_000,
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await probe();
  while (!done(value)) {
    if (Date.now() > deadline) throw new Error(`timed out; last value ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
    value = await probe();
  }
  return value;
}
