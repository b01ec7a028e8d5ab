import type { Algorithm } from '@node-rs/argon2';

/** The native argon2 binding, loaded the first time a password is hashed or checked. */
const argon2 = () => import('@node-rs/argon2');

/** argon2id (`Algorithm.Argon2id`; the enum is a `const enum`, which isolated modules cannot read). */
const ARGON2ID = 2 as Algorithm;

/** OWASP's argon2id settings: 19 MiB, 2 passes, 1 lane. */
const OPTIONS = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 };

export const MIN_PASSWORD_LENGTH = 10;
export const MAX_PASSWORD_LENGTH = 200;

export async function hashPassword(password: string): Promise<string> {
  return (await argon2()).hash(password, OPTIONS);
}

/** A hash of nothing anybody knows: an unknown address costs the same time as a wrong password. */
let decoy: Promise<string> | undefined;

/** True when `password` matches `stored`; with no stored hash, false after the same work. */
export async function passwordMatches(stored: string | undefined, password: string): Promise<boolean> {
  if (!stored) {
    decoy ??= hashPassword(`decoy-${Math.random()}`);
    const { verify } = await argon2();
    await verify(await decoy, password).catch(() => false);
    return false;
  }
  const { verify } = await argon2();
  return verify(stored, password).catch(() => false);
}
