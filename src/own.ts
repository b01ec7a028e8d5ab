/**
 * Reading and writing plain objects by a name that comes from outside (a script's variable
 * name, a record key from JSON, a person's answer): only the object's own properties count, so
 * `constructor`, `toString` or `__proto__` never reach `Object.prototype`, and writing
 * `__proto__` makes an ordinary property instead of changing the object's prototype.
 */
export function own<T>(object: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

export function setOwn<T>(object: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
}

/** A copy of `values` on an object without prototype: every name is only what was put there. */
export function bareRecord<T>(values: Readonly<Record<string, T>> = {}): Record<string, T> {
  const out = Object.create(null) as Record<string, T>;
  for (const key of Object.keys(values)) out[key] = values[key]!;
  return out;
}
