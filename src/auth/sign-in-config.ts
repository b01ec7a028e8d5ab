import fs from 'node:fs/promises';
import path from 'node:path';
import type { BotRegistry } from '../config/bots.ts';
import { ConfigError, type HubConfig } from '../config/env.ts';
import { createJwtVerifier, type JwtKey, JwtKeyError, type JwtVerifier } from './jwt.ts';

/** The sign-in verifier of each bot: its own (`auth` in bot.json), else the global one, else none. */
export interface SignInVerifiers {
  /** True when at least one bot can sign in. */
  readonly enabled: boolean;
  forBot(bot: string): JwtVerifier | undefined;
}

interface KeySource {
  /** Names the setting in error messages: `AUTH_JWKS_FILE`, `bot "support": auth.jwksFile`. */
  label: string;
  load(): Promise<JwtKey>;
}

async function readKeyFile(label: string, file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `${label}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
}

const publicKeySource = (label: string, file: string): KeySource => ({
  label,
  load: async () => ({ kind: 'public-key', pem: await readKeyFile(label, file) }),
});

const jwksSource = (label: string, file: string): KeySource => ({
  label,
  async load() {
    const text = await readKeyFile(label, file);
    try {
      return { kind: 'jwks', jwks: JSON.parse(text) as unknown };
    } catch (err) {
      throw new ConfigError(`${label}: ${file} is not valid JSON (${(err as Error).message})`);
    }
  },
});

async function buildVerifier(
  source: KeySource,
  claims: {
    issuer: string | undefined;
    audience: string | undefined;
    issuerLabel: string;
    audienceLabel: string;
  },
  clockToleranceSeconds: number,
): Promise<JwtVerifier> {
  // Without both checks a token the host site minted for another service would sign users in here.
  if (!claims.issuer)
    throw new ConfigError(`${source.label} is set, so ${claims.issuerLabel} must be set too`);
  if (!claims.audience)
    throw new ConfigError(`${source.label} is set, so ${claims.audienceLabel} must be set too`);
  const key = await source.load();
  try {
    return await createJwtVerifier({
      key,
      issuer: claims.issuer,
      audience: claims.audience,
      clockToleranceSeconds,
    });
  } catch (err) {
    if (err instanceof JwtKeyError) throw new ConfigError(`${source.label}: ${err.message}`);
    throw err;
  }
}

function globalSource(config: HubConfig): KeySource | undefined {
  const sources: KeySource[] = [];
  if (config.authJwtSecret)
    sources.push({
      label: 'AUTH_JWT_SECRET',
      load: async () => ({ kind: 'secret', secret: config.authJwtSecret! }),
    });
  if (config.authJwtPublicKeyFile)
    sources.push(publicKeySource('AUTH_JWT_PUBLIC_KEY_FILE', config.authJwtPublicKeyFile));
  if (config.authJwksFile) sources.push(jwksSource('AUTH_JWKS_FILE', config.authJwksFile));
  if (sources.length > 1)
    throw new ConfigError(
      `set only one of ${sources.map((s) => s.label).join(', ')}: a sign-in key comes from one place`,
    );
  return sources[0];
}

/**
 * Reads every sign-in key once, at start. Any problem (a missing file, a short secret, an unset
 * `secretEnv` variable, a missing issuer or audience) is a ConfigError naming the setting.
 */
export async function loadSignInVerifiers(
  config: HubConfig,
  bots: BotRegistry,
  env: NodeJS.ProcessEnv = process.env,
): Promise<SignInVerifiers> {
  const tolerance = config.authJwtClockToleranceSeconds;
  const source = globalSource(config);
  const global = source
    ? await buildVerifier(
        source,
        {
          issuer: config.authJwtIssuer,
          audience: config.authJwtAudience,
          issuerLabel: 'AUTH_JWT_ISSUER',
          audienceLabel: 'AUTH_JWT_AUDIENCE',
        },
        tolerance,
      )
    : undefined;
  const perBot = new Map<string, JwtVerifier>();
  for (const name of bots.names()) {
    const bot = bots.get(name);
    const auth = bot.settings.auth;
    if (!auth) continue;
    const label = (key: string) => `bot "${name}": auth.${key}`;
    let botSource: KeySource;
    if (auth.secretEnv) {
      const secret = env[auth.secretEnv];
      if (!secret) throw new ConfigError(`${label('secretEnv')} names ${auth.secretEnv}, which is not set`);
      botSource = { label: label('secretEnv'), load: async () => ({ kind: 'secret', secret }) };
    } else if (auth.publicKeyFile) {
      botSource = publicKeySource(label('publicKeyFile'), path.resolve(bot.dir, auth.publicKeyFile));
    } else {
      botSource = jwksSource(label('jwksFile'), path.resolve(bot.dir, auth.jwksFile!));
    }
    perBot.set(
      name,
      await buildVerifier(
        botSource,
        {
          issuer: auth.issuer ?? config.authJwtIssuer,
          audience: auth.audience ?? config.authJwtAudience,
          issuerLabel: `${label('issuer')} (or AUTH_JWT_ISSUER)`,
          audienceLabel: `${label('audience')} (or AUTH_JWT_AUDIENCE)`,
        },
        tolerance,
      ),
    );
  }
  return {
    enabled: global !== undefined || perBot.size > 0,
    forBot: (bot) => perBot.get(bot) ?? global,
  };
}
