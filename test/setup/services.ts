import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { Redis } from 'ioredis';
import pg from 'pg';
import { until } from '../helpers/until.ts';

/**
 * Where the tests find PostgreSQL and Redis. Tests only ever create (and drop) databases named
 * `sbt_*` and keys under a prefix of their own, so pointing these at a developer's servers is safe.
 */
export const TEST_DATABASE_URL =
  process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A Debian package a suite needs, and the file that shows it is installed. */
export interface DebianRequirement {
  pkg: string;
  binary: string;
  neededBy: string;
}

const PACKAGES_FILE = new URL('./debian-packages.txt', import.meta.url);

/** Every Debian package some suite drives for real: `debian-packages.txt`, which `.ci/run` reads too. */
export function debianRequirements(): DebianRequirement[] {
  return fs
    .readFileSync(PACKAGES_FILE, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [pkg = '', binary = '', ...rest] = line.split(/\s+/);
      return { pkg, binary, neededBy: rest.join(' ') || 'the tests' };
    });
}

const isLoopback = (host: string) => ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host);
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

export class MissingServiceError extends Error {
  override name = 'MissingServiceError';
}

async function postgresAnswers(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function redisAnswers(): Promise<string | undefined> {
  const redis = new Redis(TEST_REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 2_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    redis.disconnect();
  }
}

async function waitFor(check: () => Promise<string | undefined>, ms: number): Promise<string | undefined> {
  let last: string | undefined;
  await until(
    async () => {
      last = await check();
      return last;
    },
    (problem) => problem === undefined,
    ms,
    250,
  ).catch(() => undefined);
  return last;
}

/** PostgreSQL answering, or started with the machine's own command when installed but stopped. */
export async function ensurePostgres(): Promise<void> {
  let problem = await postgresAnswers();
  if (!problem) return;
  const url = new URL(TEST_DATABASE_URL);
  if (isLoopback(url.hostname) && has('pg_ctlcluster') && fs.existsSync('/etc/postgresql')) {
    for (const version of fs.readdirSync('/etc/postgresql')) {
      spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], {
        stdio: 'ignore',
      });
    }
    problem = await waitFor(postgresAnswers, 20_000);
    if (!problem) return;
  }
  throw new MissingServiceError(
    `PostgreSQL is not reachable at ${url.host} (${problem}): install it (apt-get install postgresql) and start it, or set TEST_DATABASE_URL`,
  );
}

/** Redis answering, or started the way this machine starts it when installed but stopped. */
export async function ensureRedis(): Promise<void> {
  let problem = await redisAnswers();
  if (!problem) return;
  const url = new URL(TEST_REDIS_URL);
  if (isLoopback(url.hostname) && has('redis-server')) {
    fs.mkdirSync('/var/lib/redis', { recursive: true });
    spawnSync(
      'redis-server',
      [
        '--daemonize',
        'yes',
        '--bind',
        '127.0.0.1',
        '-::1',
        '--port',
        url.port || '6379',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        '/var/lib/redis',
      ],
      { stdio: 'ignore' },
    );
    problem = await waitFor(redisAnswers, 10_000);
    if (!problem) return;
  }
  throw new MissingServiceError(
    `Redis is not reachable at ${url.host} (${problem}): install it (apt-get install redis-server) and start it, or set TEST_REDIS_URL`,
  );
}

/** Installs the Debian packages suites need when they are missing and this user may install. */
export function ensureDebianPackages(requirements: DebianRequirement[] = debianRequirements()): void {
  const missing = requirements.filter((r) => !fs.existsSync(r.binary));
  if (missing.length === 0) return;
  const pkgs = missing.map((r) => r.pkg);
  const canInstall = process.getuid?.() === 0 && has('apt-get');
  if (canInstall) {
    try {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', timeout: 300_000 });
      execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], {
        stdio: 'ignore',
        timeout: 900_000,
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    } catch {
      // Reported below, by what is still missing.
    }
  }
  const still = missing.filter((r) => !fs.existsSync(r.binary));
  if (still.length > 0) {
    const which = still.map((r) => `${r.pkg} (for ${r.neededBy})`).join(', ');
    throw new MissingServiceError(
      `missing Debian packages: ${which}; install them with: apt-get install ${still.map((r) => r.pkg).join(' ')}`,
    );
  }
}
