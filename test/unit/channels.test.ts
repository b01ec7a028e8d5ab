import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHANNEL_PLUGINS } from '../../adapters/index.ts';
import { normalizeNativeId } from '../../src/auth/identity.ts';
import { channels } from '../../src/channels/registry.ts';
import { BotSettingsSchema } from '../../src/config/bots.ts';
import { EnvelopeSchema } from '../../src/envelope.ts';
import { REPO_ROOT } from '../helpers/hub.ts';

const ADAPTERS = path.join(REPO_ROOT, 'adapters');

/**
 * The packages a module loads at import time, following relative imports: `import type` is erased
 * and a dynamic `import()` is not followed.
 */
async function staticPackages(file: string, seen = new Set<string>()): Promise<Set<string>> {
  const packages = new Set<string>();
  if (seen.has(file)) return packages;
  seen.add(file);
  const source = await fs.readFile(file, 'utf8');
  for (const [, specifier] of source.matchAll(/^(?:import|export)\s(?!type\s)[^;]*?\sfrom\s+'([^']+)'/gms)) {
    if (specifier!.startsWith('.')) {
      for (const p of await staticPackages(path.resolve(path.dirname(file), specifier!), seen))
        packages.add(p);
    } else if (!specifier!.startsWith('node:')) {
      packages.add(specifier!);
    }
  }
  return packages;
}

describe('channel declarations', () => {
  it('registers one declaration for each adapter folder, under the folder name', async () => {
    const folders = (await fs.readdir(ADAPTERS, { withFileTypes: true }))
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
    expect(CHANNEL_PLUGINS.map((p) => p.declaration.name).sort()).toEqual(folders);
    expect(channels.names().sort()).toEqual(folders);
  });

  it('loads the registration list without any platform SDK', async () => {
    const packages = await staticPackages(path.join(ADAPTERS, 'index.ts'));
    // Declarations, configuration parsing and the core's types: nothing that talks to a platform.
    for (const sdk of [
      'botbuilder',
      'whatsapp-web.js',
      'imapflow',
      'nodemailer',
      'mailparser',
      'grammy',
      '@slack/web-api',
      'ws',
      'hono',
    ])
      expect(packages.has(sdk), sdk).toBe(false);
  });

  it('says what the core used to hard-code: identified persons, explicit sessions, live delivery', () => {
    const decl = (name: string) => channels.require(name);
    expect(['whatsapp', 'teams', 'email'].every((n) => decl(n).identified)).toBe(true);
    expect(['api', 'web'].some((n) => decl(n).identified)).toBe(false);
    expect(
      channels
        .all()
        .filter((d) => d.sessions === 'explicit')
        .map((d) => d.name)
        .sort(),
    ).toEqual(['api', 'web']);
    expect(
      channels
        .all()
        .filter((d) => d.delivery === 'live')
        .map((d) => d.name),
    ).toEqual(['web']);
  });

  it('normalises native ids as each channel declares', () => {
    expect(normalizeNativeId('email', ' Ada@Example.COM ')).toBe('ada@example.com');
    expect(normalizeNativeId('whatsapp', '+44 20 7946-0958')).toBe('+442079460958');
    expect(normalizeNativeId('teams', ' 29:1AbC ')).toBe('29:1AbC');
    expect(() => normalizeNativeId('fax', '123')).toThrow(/unknown channel "fax"/);
  });

  it('refuses an envelope or a bot.json override for a channel nobody declares', () => {
    const envelope = {
      id: 'fax:1',
      channel: 'fax',
      bot: 'default',
      from: { id: '1' },
      text: 'hi',
      receivedAt: new Date().toISOString(),
    };
    const refused = EnvelopeSchema.safeParse(envelope);
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0]?.message).toMatch(/unknown channel "fax"; channels: .*email/);
    expect(EnvelopeSchema.safeParse({ ...envelope, id: 'email:1', channel: 'email' }).success).toBe(true);

    const settings = (channelsOverride: Record<string, unknown>) =>
      BotSettingsSchema.safeParse({ sessions: { channels: channelsOverride } });
    expect(settings({ whatsapp: { idleTimeoutMinutes: 1440 } }).success).toBe(true);
    const bad = settings({ fax: { idleTimeoutMinutes: 5 } });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error?.issues)).toMatch(/unknown channel \\"fax\\"/);
  });
});
