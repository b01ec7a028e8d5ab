import { createHmac, randomBytes } from 'node:crypto';

/** Bytes of the key that makes lanes' pseudonyms. */
const LANE_KEY_BYTES = 32;
/** Characters of a pseudonym (base64url): 132 bits of the HMAC, enough that lanes do not collide. */
const LANE_PSEUDONYM_CHARS = 22;

/** Made at the first traced drain, never written anywhere: the pseudonyms cannot be reversed. */
let laneKey: Buffer | undefined;

/**
 * What a span says of a lane (`switchboard.lane.hash`). A lane is `bot|channel|native key`, and
 * the key is a phone number, an email address, a Teams or Telegram id: personal data that must
 * not reach the trace backend, which no erasure reaches. A keyed hash (HMAC-SHA256 with a key of
 * this process's own) is the same for the same lane within the process, so a lane's queue jobs
 * can be told apart and grouped; without the key, which never leaves the process, nobody can
 * tell whose lane it was, not even by hashing every phone number. Other processes, and this one
 * after a restart, give the same lane another value (the turns the job links to name the session).
 */
export function lanePseudonym(lane: string): string {
  laneKey ??= randomBytes(LANE_KEY_BYTES);
  return createHmac('sha256', laneKey).update(lane).digest('base64url').slice(0, LANE_PSEUDONYM_CHARS);
}
