import { createPublicKey } from 'node:crypto';
import type { CryptoKey, JSONWebKeySet, JWTVerifyGetKey } from 'jose';
import { z } from 'zod';

/**
 * Checks the JWTs a host site signs to vouch for its user (sign-in upgrade). Pure: key material
 * comes in as text and objects, files are read by `sign-in-config.ts`.
 */

/** Where the verification key comes from. Each kind allows only its own algorithms. */
export type JwtKey =
  | { kind: 'secret'; secret: string }
  | { kind: 'public-key'; pem: string }
  | { kind: 'jwks'; jwks: unknown };

export interface JwtVerifierOptions {
  key: JwtKey;
  issuer: string;
  audience: string;
  /** Skew allowed on `exp` and `nbf`. */
  clockToleranceSeconds?: number;
}

export type SignInLevel = 'authenticated' | 'elevated';

/** What a valid JWT says about its user. */
export interface VerifiedUser {
  /** The host site's id for the person (`sub`). */
  subject: string;
  name: string | undefined;
  email: string | undefined;
  emailVerified: boolean;
  phoneNumber: string | undefined;
  phoneNumberVerified: boolean;
  /** `elevated` when the JWT carries `"auth_level": "elevated"`. */
  authLevel: SignInLevel;
}

export interface JwtVerifier {
  /** Resolves with the user, or rejects with InvalidCredentialsError. */
  verify(jwt: string): Promise<VerifiedUser>;
}

/** The key material is unusable (too short a secret, not a public key, not a JWKS). */
export class JwtKeyError extends Error {
  override name = 'JwtKeyError';
}

/** The JWT is not acceptable. `reason` is for logs; clients are told nothing more than "invalid". */
export class InvalidCredentialsError extends Error {
  override name = 'InvalidCredentialsError';
  constructor(readonly reason: string) {
    super(`invalid credentials: ${reason}`);
  }
}

/** HS256 with a short secret can be brute-forced offline from one token. */
export const MIN_SECRET_BYTES = 32;
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 5;
const ASYMMETRIC_ALGORITHMS = ['RS256', 'ES256'];

/** Some identity providers send booleans as strings. */
const flag = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]);
/** An optional claim of the wrong type is ignored rather than failing the sign-in. */
const optional = <T extends z.ZodType>(schema: T) => schema.optional().catch(undefined);

const ClaimsSchema = z.object({
  sub: z.string({ error: 'no sub' }).trim().min(1, 'empty sub').max(255, 'sub too long'),
  name: optional(z.string().trim().min(1).max(200)),
  email: optional(z.string().trim().min(3).max(320)),
  email_verified: optional(flag),
  phone_number: optional(z.string().trim().min(3).max(40)),
  phone_number_verified: optional(flag),
  auth_level: optional(z.string()),
});

async function publicKey(pem: string): Promise<{ key: CryptoKey; algorithm: string }> {
  let algorithm: string;
  try {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType === 'rsa') algorithm = 'RS256';
    else if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')
      algorithm = 'ES256';
    else
      throw new JwtKeyError(
        `a ${key.asymmetricKeyType} key${key.asymmetricKeyDetails?.namedCurve ? ` on ${key.asymmetricKeyDetails.namedCurve}` : ''} is not supported; use RSA (RS256) or EC P-256 (ES256)`,
      );
  } catch (err) {
    if (err instanceof JwtKeyError) throw err;
    throw new JwtKeyError(`not a PEM public key (${(err as Error).message})`);
  }
  try {
    return { key: await jose.importSPKI(pem, algorithm), algorithm };
  } catch (err) {
    throw new JwtKeyError(`not a PEM "PUBLIC KEY" (SPKI) block (${(err as Error).message})`);
  }
}

function jwkSet(jwks: unknown): JWTVerifyGetKey {
  const parsed = z.object({ keys: z.array(z.object({ kty: z.string() }).loose()).min(1) }).safeParse(jwks);
  if (!parsed.success) throw new JwtKeyError('not a JWKS: expected {"keys": [{"kty": ...}, ...]}');
  try {
    return jose.createLocalJWKSet(parsed.data as JSONWebKeySet);
  } catch (err) {
    throw new JwtKeyError(`not a usable JWKS (${(err as Error).message})`);
  }
}

async function resolveKey(
  key: JwtKey,
): Promise<{ key: Uint8Array | CryptoKey | JWTVerifyGetKey; algorithms: string[] }> {
  switch (key.kind) {
    case 'secret': {
      const bytes = new TextEncoder().encode(key.secret);
      if (bytes.length < MIN_SECRET_BYTES)
        throw new JwtKeyError(`the HS256 secret must be at least ${MIN_SECRET_BYTES} bytes long`);
      return { key: bytes, algorithms: ['HS256'] };
    }
    case 'public-key': {
      const { key: imported, algorithm } = await publicKey(key.pem);
      return { key: imported, algorithms: [algorithm] };
    }
    case 'jwks':
      return { key: jwkSet(key.jwks), algorithms: ASYMMETRIC_ALGORITHMS };
  }
}

function reasonOf(err: unknown): string {
  const { errors } = jose;
  if (err instanceof errors.JWTExpired) return 'expired';
  if (err instanceof errors.JWTClaimValidationFailed) return `claim ${err.claim}: ${err.reason}`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad signature';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (err instanceof errors.JWKSNoMatchingKey) return 'no matching key';
  if (err instanceof errors.JWKSMultipleMatchingKeys) return 'several matching keys';
  if (err instanceof errors.JOSEError) return err.code;
  return 'malformed';
}

/**
 * jose, loaded by the first verifier made (sign-in keys configured), not at every start: ~50 ms
 * of module loading before `/readyz` that a hub without sign-in never uses (README, "Performance").
 */
let jose: typeof import('jose');

/** Imports the key once; the verifier it returns is cheap to call. Throws JwtKeyError for bad key material. */
export async function createJwtVerifier(options: JwtVerifierOptions): Promise<JwtVerifier> {
  jose ??= await import('jose');
  const { jwtVerify } = jose;
  const { key, algorithms } = await resolveKey(options.key);
  const verifyOptions = {
    algorithms,
    issuer: options.issuer,
    audience: options.audience,
    clockTolerance: options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS,
    requiredClaims: ['sub', 'exp'],
  };
  return {
    async verify(jwt) {
      let payload: unknown;
      try {
        // The overloads of jwtVerify differ only in the key's type.
        payload =
          typeof key === 'function'
            ? (await jwtVerify(jwt, key, verifyOptions)).payload
            : (await jwtVerify(jwt, key, verifyOptions)).payload;
      } catch (err) {
        throw new InvalidCredentialsError(reasonOf(err));
      }
      const claims = ClaimsSchema.safeParse(payload);
      if (!claims.success) throw new InvalidCredentialsError(claims.error.issues[0]?.message ?? 'bad claims');
      const c = claims.data;
      return {
        subject: c.sub,
        name: c.name,
        email: c.email,
        emailVerified: c.email_verified === true,
        phoneNumber: c.phone_number,
        phoneNumberVerified: c.phone_number_verified === true,
        authLevel: c.auth_level === 'elevated' ? 'elevated' : 'authenticated',
      };
    },
  };
}
