import { channels, hasExplicitSessions } from '../channels/registry.ts';
import type { Channel } from '../envelope.ts';
import type { Db } from '../store/db.ts';
import { recordEvent } from '../store/events.ts';
import { findSessionByTokenHash, lockTokenSessionState, upgradeTokenSession } from '../store/sessions.ts';
import {
  absorbAnonymousUser,
  type FreeLinkResult,
  linkFreeIdentity,
  upsertExternalUser,
} from '../store/users.ts';
import { InvalidIdentityError } from './identity.ts';
import type { SignInLevel, VerifiedUser } from './jwt.ts';
import { hashToken, newToken } from './token.ts';

/** The token no longer opens an open session: another sign-in replaced it, or the session ended. */
export class StaleTokenError extends Error {
  override name = 'StaleTokenError';
}

/** The session is signed in as another user; it cannot change hands. */
export class SessionOwnedError extends Error {
  override name = 'SessionOwnedError';
}

/** The session is not one a client holds by token. */
export class NotUpgradableError extends Error {
  override name = 'NotUpgradableError';
}

export interface IdentityLink {
  channel: Channel;
  nativeId: string;
  result: FreeLinkResult;
}

export interface SignInResult {
  sessionId: string;
  bot: string;
  userId: string;
  authLevel: SignInLevel;
  /** Shown to the client once; the old token is dead. */
  token: string;
  identities: IdentityLink[];
}

/**
 * The channel identities a JWT vouches for: only verified email addresses and phone numbers, on
 * every channel whose native ids are addresses or numbers.
 */
function verifiedIdentities(user: VerifiedUser): { channel: Channel; nativeId: string }[] {
  const found: { channel: Channel; nativeId: string }[] = [];
  const email = user.emailVerified ? user.email : undefined;
  const phone = user.phoneNumberVerified ? user.phoneNumber : undefined;
  for (const [kind, raw] of [
    ['email', email],
    ['phone', phone],
  ] as const) {
    if (!raw) continue;
    for (const declaration of channels.all()) {
      if (declaration.nativeId.kind !== kind) continue;
      try {
        found.push({ channel: declaration.name, nativeId: declaration.nativeId.normalize(raw) });
      } catch (err) {
        if (!(err instanceof InvalidIdentityError)) throw err;
      }
    }
  }
  return found;
}

/**
 * Upgrades the session `tokenHash` opens to the verified user, in one transaction: the user
 * (found or made by `sub`), the session's owner, level, expiry and token, its state version,
 * the `session.authenticated` event and the identities the JWT verified. Nothing changes when
 * it throws. The caller drops the session from the cache afterwards.
 */
export async function signInSession(db: Db, tokenHash: Buffer, user: VerifiedUser): Promise<SignInResult> {
  return db.transaction(async (tx) => {
    const stale = () => new StaleTokenError('the session token is no longer valid');
    // A second sign-in with the same token waits here, then finds the token replaced.
    const sessionId = await lockTokenSessionState(tx, tokenHash);
    if (!sessionId) throw stale();
    const session = await findSessionByTokenHash(tx, tokenHash);
    if (session?.id !== sessionId || session.endedAt) throw stale();
    // Only sessions a client holds by token can be signed in.
    if (!hasExplicitSessions(session.channel))
      throw new NotUpgradableError(`a ${session.channel} session cannot be signed in`);
    const userId = await upsertExternalUser(tx, {
      externalId: user.subject,
      name: user.name,
      email: user.email?.toLowerCase(),
    });
    if (session.authLevel !== 'anonymous' && session.userId !== userId)
      throw new SessionOwnedError('the session is signed in as another user');
    const token = newToken();
    const upgraded = await upgradeTokenSession(tx, {
      sessionId: session.id,
      oldTokenHash: tokenHash,
      newTokenHash: hashToken(token),
      userId,
      authLevel: user.authLevel,
    });
    if (!upgraded) throw stale();
    // What the anonymous session remembered about its person (USER MEMORY) is the signed-in user's now.
    if (session.authLevel === 'anonymous' && session.userId && session.userId !== userId)
      await absorbAnonymousUser(tx, session.userId, userId);
    const identities: IdentityLink[] = [];
    for (const identity of verifiedIdentities(user)) {
      const result = await linkFreeIdentity(tx, { ...identity, userId, displayName: user.name });
      identities.push({ ...identity, result });
    }
    await recordEvent(tx, {
      sessionId: session.id,
      bot: session.bot,
      channel: session.channel,
      type: 'session.authenticated',
      data: {
        userId,
        authLevel: user.authLevel,
        previousAuthLevel: session.authLevel,
        linked: identities.filter((i) => i.result === 'linked').map((i) => i.channel),
      },
    });
    return {
      sessionId: session.id,
      bot: session.bot,
      userId,
      authLevel: user.authLevel,
      token,
      identities,
    };
  });
}
