import fs from 'node:fs/promises';
import path from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeNativeId } from '../../src/auth/identity.ts';
import { createJwtVerifier, InvalidCredentialsError, type JwtVerifier } from '../../src/auth/jwt.ts';
import { loadSignInVerifiers } from '../../src/auth/sign-in-config.ts';
import { BotRegistry, BotSettingsSchema, settingsOnlyHandler } from '../../src/config/bots.ts';
import { ConfigError, type HubConfig, loadConfig } from '../../src/config/env.ts';
import { tempDir } from '../helpers/database.ts';

const ISSUER = 'https://shop.example';
const AUDIENCE = 'switchboard';
const SECRET = 'a-shared-secret-of-at-least-32-bytes!';
const secretKey = new TextEncoder().encode(SECRET);

type SignKey = Parameters<SignJWT['sign']>[0];

/** A JWT as the host site would sign it; `claims` and `options` change what a test needs. */
async function sign(
  key: SignKey,
  claims: Record<string, unknown> = {},
  options: {
    alg?: string;
    kid?: string;
    issuer?: string;
    audience?: string;
    exp?: string | number;
    sub?: string | null;
  } = {},
): Promise<string> {
  const jwt = new SignJWT({ name: 'Ada Lovelace', ...claims })
    .setProtectedHeader({ alg: options.alg ?? 'HS256', ...(options.kid ? { kid: options.kid } : {}) })
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.exp ?? '5m');
  if (options.sub !== null) jwt.setSubject(options.sub ?? 'user-42');
  return jwt.sign(key);
}

async function rejection(verifier: JwtVerifier, jwt: string): Promise<InvalidCredentialsError> {
  const err = await verifier.verify(jwt).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InvalidCredentialsError);
  return err as InvalidCredentialsError;
}

describe('sign-in JWTs, HS256 with a shared secret', () => {
  let verifier: JwtVerifier;
  beforeAll(async () => {
    verifier = await createJwtVerifier({
      key: { kind: 'secret', secret: SECRET },
      issuer: ISSUER,
      audience: AUDIENCE,
    });
  });

  it('accepts a good token and reads its user from the claims', async () => {
    const user = await verifier.verify(
      await sign(secretKey, {
        email: 'Ada@Example.com',
        email_verified: true,
        phone_number: '+44 20 7946 0958',
        phone_number_verified: 'true',
      }),
    );
    expect(user).toEqual({
      subject: 'user-42',
      name: 'Ada Lovelace',
      email: 'Ada@Example.com',
      emailVerified: true,
      phoneNumber: '+44 20 7946 0958',
      phoneNumberVerified: true,
      authLevel: 'authenticated',
    });
  });

  it('says elevated only when the auth_level claim says so', async () => {
    expect((await verifier.verify(await sign(secretKey, { auth_level: 'elevated' }))).authLevel).toBe(
      'elevated',
    );
    expect((await verifier.verify(await sign(secretKey, { auth_level: 'admin' }))).authLevel).toBe(
      'authenticated',
    );
  });

  it('ignores unverified and wrongly typed optional claims', async () => {
    const user = await verifier.verify(await sign(secretKey, { email: 'x@example.com', name: 42 }));
    expect(user.emailVerified).toBe(false);
    expect(user.name).toBeUndefined();
  });

  it('refuses a bad signature', async () => {
    const err = await rejection(verifier, await sign(new TextEncoder().encode(`${SECRET}-but-another-one`)));
    expect(err.reason).toBe('bad signature');
  });

  it('refuses a wrong audience', async () => {
    const err = await rejection(verifier, await sign(secretKey, {}, { audience: 'another-service' }));
    expect(err.reason).toContain('aud');
  });

  it('refuses a wrong issuer', async () => {
    const err = await rejection(verifier, await sign(secretKey, {}, { issuer: 'https://evil.example' }));
    expect(err.reason).toContain('iss');
  });

  it('refuses an expired token, beyond the clock tolerance', async () => {
    const now = Math.floor(Date.now() / 1000);
    const err = await rejection(verifier, await sign(secretKey, {}, { exp: now - 60 }));
    expect(err.reason).toBe('expired');
    // Two seconds late is within the default five seconds of tolerance.
    await expect(verifier.verify(await sign(secretKey, {}, { exp: now - 2 }))).resolves.toMatchObject({
      subject: 'user-42',
    });
  });

  it('refuses a token without sub, or with an empty one', async () => {
    const err = await rejection(verifier, await sign(secretKey, {}, { sub: null }));
    expect(err.reason).toContain('sub');
    await rejection(verifier, await sign(secretKey, {}, { sub: '' }));
  });

  it('refuses a token without exp', async () => {
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('user-42')
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .sign(secretKey);
    await rejection(verifier, jwt);
  });

  it('refuses unsigned tokens, other algorithms and garbage', async () => {
    const unsecured = new UnsecuredJWT({ sub: 'user-42' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .encode();
    await rejection(verifier, unsecured);
    const err = await rejection(verifier, await sign(secretKey, {}, { alg: 'HS512' }));
    expect(err.reason).toBe('algorithm not allowed');
    await rejection(verifier, 'not.a.jwt');
  });

  it('refuses a secret too short to be safe', async () => {
    await expect(
      createJwtVerifier({ key: { kind: 'secret', secret: 'short' }, issuer: ISSUER, audience: AUDIENCE }),
    ).rejects.toThrow(/at least 32 bytes/);
  });
});

describe('sign-in JWTs with public keys, loaded from files', () => {
  let dir: string;
  let rsa: Awaited<ReturnType<typeof generateKeyPair>>;
  let ec: Awaited<ReturnType<typeof generateKeyPair>>;
  let rsaPemFile: string;
  let jwksFile: string;
  const defaultBotOnly = new BotRegistry([
    {
      name: 'default',
      dir: '/nonexistent',
      settings: BotSettingsSchema.parse({}),
      handler: settingsOnlyHandler(BotSettingsSchema.parse({})),
    },
  ]);
  const config = (env: Record<string, string>): HubConfig =>
    loadConfig({ AUTH_JWT_ISSUER: ISSUER, AUTH_JWT_AUDIENCE: AUDIENCE, ...env });

  beforeAll(async () => {
    dir = await tempDir('sbt-jwt-');
    rsa = await generateKeyPair('RS256', { extractable: true });
    ec = await generateKeyPair('ES256', { extractable: true });
    rsaPemFile = path.join(dir, 'host-rsa.pem');
    await fs.writeFile(rsaPemFile, await exportSPKI(rsa.publicKey));
    jwksFile = path.join(dir, 'jwks.json');
    const ecJwk = { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' };
    const rsaJwk = { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' };
    await fs.writeFile(jwksFile, JSON.stringify({ keys: [ecJwk, rsaJwk] }));
  });

  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('verifies RS256 with a PEM public key, and nothing signed otherwise', async () => {
    const verifiers = await loadSignInVerifiers(
      config({ AUTH_JWT_PUBLIC_KEY_FILE: rsaPemFile }),
      defaultBotOnly,
    );
    const verifier = verifiers.forBot('default')!;
    expect(verifiers.enabled).toBe(true);
    expect((await verifier.verify(await sign(rsa.privateKey, {}, { alg: 'RS256' }))).subject).toBe('user-42');
    const other = await generateKeyPair('RS256');
    const err = await rejection(verifier, await sign(other.privateKey, {}, { alg: 'RS256' }));
    expect(err.reason).toBe('bad signature');
    // The classic confusion: an HS256 token "signed" with the public key's text is not accepted.
    const pem = await fs.readFile(rsaPemFile);
    await rejection(verifier, await sign(new Uint8Array(pem), {}, { alg: 'HS256' }));
  });

  it('verifies ES256 through a JWKS file, choosing the key by kid', async () => {
    const verifiers = await loadSignInVerifiers(config({ AUTH_JWKS_FILE: jwksFile }), defaultBotOnly);
    const verifier = verifiers.forBot('default')!;
    const user = await verifier.verify(
      await sign(ec.privateKey, { auth_level: 'elevated' }, { alg: 'ES256', kid: 'ec-1' }),
    );
    expect(user).toMatchObject({ subject: 'user-42', authLevel: 'elevated' });
    expect(
      (await verifier.verify(await sign(rsa.privateKey, {}, { alg: 'RS256', kid: 'rsa-1' }))).subject,
    ).toBe('user-42');
    const stranger = await generateKeyPair('ES256');
    await rejection(verifier, await sign(stranger.privateKey, {}, { alg: 'ES256', kid: 'ec-1' }));
    await rejection(verifier, await sign(ec.privateKey, {}, { alg: 'ES256', kid: 'unknown' }));
    await rejection(
      verifier,
      await sign(ec.privateKey, {}, { alg: 'ES256', kid: 'ec-1', audience: 'other' }),
    );
  });

  it('is off with nothing configured', async () => {
    const verifiers = await loadSignInVerifiers(loadConfig({}), defaultBotOnly);
    expect(verifiers.enabled).toBe(false);
    expect(verifiers.forBot('default')).toBeUndefined();
  });

  it('stops the start with a ConfigError naming the setting', async () => {
    const load = (env: Record<string, string>, bots = defaultBotOnly) =>
      loadSignInVerifiers(loadConfig(env), bots, {});
    await expect(load({ AUTH_JWT_SECRET: SECRET, AUTH_JWT_AUDIENCE: AUDIENCE })).rejects.toThrow(
      new ConfigError('AUTH_JWT_SECRET is set, so AUTH_JWT_ISSUER must be set too'),
    );
    await expect(
      load({ AUTH_JWT_SECRET: 'short', AUTH_JWT_ISSUER: ISSUER, AUTH_JWT_AUDIENCE: AUDIENCE }),
    ).rejects.toThrow(/AUTH_JWT_SECRET: the HS256 secret must be at least 32 bytes/);
    await expect(
      load({
        AUTH_JWT_SECRET: SECRET,
        AUTH_JWKS_FILE: jwksFile,
        AUTH_JWT_ISSUER: ISSUER,
        AUTH_JWT_AUDIENCE: AUDIENCE,
      }),
    ).rejects.toThrow(/set only one of AUTH_JWT_SECRET, AUTH_JWKS_FILE/);
    await expect(
      load({
        AUTH_JWT_PUBLIC_KEY_FILE: path.join(dir, 'missing.pem'),
        AUTH_JWT_ISSUER: ISSUER,
        AUTH_JWT_AUDIENCE: AUDIENCE,
      }),
    ).rejects.toThrow(/AUTH_JWT_PUBLIC_KEY_FILE: cannot read .*missing\.pem \(ENOENT\)/);
    await expect(
      load({ AUTH_JWT_PUBLIC_KEY_FILE: jwksFile, AUTH_JWT_ISSUER: ISSUER, AUTH_JWT_AUDIENCE: AUDIENCE }),
    ).rejects.toThrow(/AUTH_JWT_PUBLIC_KEY_FILE: not a PEM public key/);
    await expect(
      load({ AUTH_JWKS_FILE: rsaPemFile, AUTH_JWT_ISSUER: ISSUER, AUTH_JWT_AUDIENCE: AUDIENCE }),
    ).rejects.toThrow(/AUTH_JWKS_FILE: .* is not valid JSON/);
  });

  it("takes a bot's own key from bot.json: files relative to its folder, the secret from the variable it names", async () => {
    const bot = (name: string, auth: unknown) => {
      const settings = BotSettingsSchema.parse({ auth });
      return { name, dir, settings, handler: settingsOnlyHandler(settings) };
    };
    const bots = new BotRegistry([
      bot('default', undefined),
      bot('shop', { jwksFile: 'jwks.json', audience: 'shop-bot' }),
      bot('partner', { secretEnv: 'PARTNER_JWT_SECRET' }),
    ]);
    const verifiers = await loadSignInVerifiers(config({ AUTH_JWT_SECRET: SECRET }), bots, {
      PARTNER_JWT_SECRET: 'the-partner-secret-is-also-32-bytes!!',
    });
    const ecToken = await sign(ec.privateKey, {}, { alg: 'ES256', kid: 'ec-1', audience: 'shop-bot' });
    expect((await verifiers.forBot('shop')!.verify(ecToken)).subject).toBe('user-42');
    await rejection(verifiers.forBot('shop')!, await sign(secretKey));
    expect((await verifiers.forBot('default')!.verify(await sign(secretKey))).subject).toBe('user-42');
    const partnerKey = new TextEncoder().encode('the-partner-secret-is-also-32-bytes!!');
    expect((await verifiers.forBot('partner')!.verify(await sign(partnerKey))).subject).toBe('user-42');

    await expect(loadSignInVerifiers(config({}), bots, {})).rejects.toThrow(
      new ConfigError('bot "partner": auth.secretEnv names PARTNER_JWT_SECRET, which is not set'),
    );
    expect(BotSettingsSchema.safeParse({ auth: { secret: SECRET } }).success).toBe(false);
    expect(BotSettingsSchema.safeParse({ auth: { secretEnv: 'A', jwksFile: 'x.json' } }).success).toBe(false);
  });
});

describe('channel identities', () => {
  it('lower-cases email addresses and writes phone numbers in E.164', () => {
    expect(normalizeNativeId('email', ' Ada@Example.COM ')).toBe('ada@example.com');
    expect(normalizeNativeId('whatsapp', '+44 20 7946-0958')).toBe('+442079460958');
    expect(normalizeNativeId('whatsapp', '16505551234')).toBe('+16505551234');
    expect(normalizeNativeId('teams', '29:1AbC')).toBe('29:1AbC');
    expect(() => normalizeNativeId('email', 'not-an-address')).toThrow(/not an email address/);
    expect(() => normalizeNativeId('whatsapp', 'call me')).toThrow(/not a phone number/);
  });
});
