import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ZodObject } from 'zod';
import { EmailEnvSchema } from '../../adapters/email/config.ts';
import { SlackEnvSchema } from '../../adapters/slack/config.ts';
import { TeamsEnvSchema } from '../../adapters/teams/config.ts';
import { TelegramEnvSchema } from '../../adapters/telegram/config.ts';
import { WebEnvSchema } from '../../adapters/web/config.ts';
import { WhatsAppEnvSchema } from '../../adapters/whatsapp/config.ts';
import { EnvSchema } from '../../src/config/env.ts';
import { buildOpenApiDocument } from '../../src/http/openapi/document.ts';
import { TraceEnvSchema } from '../../src/telemetry/sdk.ts';
import { runSwitchboard } from '../helpers/cli.ts';
import { REPO_ROOT } from '../helpers/hub.ts';

/**
 * README is the operator's reference: every variable the hub reads is in one of its
 * configuration tables (a table whose first column is `variable`), with the default the code
 * has, and every variable a table names is read. Likewise the commands and options of
 * `switchboard help` and README's "Command line", and the statuses README's route tables give
 * against the OpenAPI document.
 */

const README = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');

/** The schemas the hub and its channels read the environment through. */
const SCHEMAS: Record<string, ZodObject> = {
  EnvSchema,
  TraceEnvSchema,
  WebEnvSchema,
  WhatsAppEnvSchema,
  TeamsEnvSchema,
  TelegramEnvSchema,
  SlackEnvSchema,
  EmailEnvSchema,
};

/** Read, but not the hub's settings: Node's own (README names it where it matters). */
const NOT_SETTINGS = new Set(['NODE_OPTIONS']);

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sourceFiles(p);
    return /\.[cm]?[jt]s$/.test(e.name) ? [p] : [];
  });
}

/** Every variable read outside the schemas: `env.NAME`, `env?.NAME`, `env['NAME']` (process.env too). */
function variablesReadInSource(): Map<string, string> {
  const found = new Map<string, string>();
  for (const file of [
    ...sourceFiles(path.join(REPO_ROOT, 'src')),
    ...sourceFiles(path.join(REPO_ROOT, 'adapters')),
  ]) {
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\benv\??\.([A-Z][A-Z0-9_]+)\b|\benv\[['"`]([A-Z][A-Z0-9_]+)['"`]\]/g)) {
      const name = (m[1] ?? m[2])!;
      if (!found.has(name)) found.set(name, path.relative(REPO_ROOT, file));
    }
  }
  return found;
}

interface ReadmeRow {
  line: number;
  default: string;
}

/** The rows of README's tables headed `| variable | default | …`, by variable (a row may name several). */
function readmeVariables(): Map<string, ReadmeRow[]> {
  const rows = new Map<string, ReadmeRow[]>();
  let table = false;
  README.split('\n').forEach((line, i) => {
    if (!line.startsWith('|')) {
      table = false;
      return;
    }
    const cells = line
      .split(/(?<!\\)\|/)
      .slice(1, -1)
      .map((c) => c.trim());
    if (/^variable$/i.test(cells[0] ?? '')) {
      expect(cells[1], `README.md:${i + 1}: a variable table's second column is its default`).toBe('default');
      table = true;
      return;
    }
    if (!table || /^-+$/.test(cells[0] ?? '')) return;
    for (const m of (cells[0] ?? '').matchAll(/`([A-Z][A-Z0-9_]+)(?:=[^`]*)?`/g)) {
      rows.set(m[1]!, [...(rows.get(m[1]!) ?? []), { line: i + 1, default: cells[1] ?? '' }]);
    }
  });
  return rows;
}

/** Each schema variable with its default: a string or a number, or undefined (none, or not one to write). */
function schemaDefaults(): Map<string, string | number | undefined> {
  const defaults = new Map<string, string | number | undefined>();
  for (const schema of Object.values(SCHEMAS))
    for (const [name, field] of Object.entries(schema.shape)) {
      const parsed = (field as ZodObject).safeParse(undefined);
      const value = parsed.success ? parsed.data : undefined;
      defaults.set(name, typeof value === 'string' || typeof value === 'number' ? value : undefined);
    }
  return defaults;
}

describe('README documents the environment the hub reads', () => {
  const documented = readmeVariables();
  const defaults = schemaDefaults();
  const read = new Set(
    [...defaults.keys(), ...variablesReadInSource().keys()].filter((n) => !NOT_SETTINGS.has(n)),
  );

  it('every variable read is in a configuration table', () => {
    const missing = [...read].filter((name) => !documented.has(name));
    expect(missing, 'variables the code reads that no README table documents').toEqual([]);
  });

  it('every variable a configuration table names is read', () => {
    const stale = [...documented]
      .filter(([name]) => !read.has(name))
      .map(([name, r]) => `${name} (README.md:${r[0]!.line})`);
    expect(stale, 'README variables no code reads').toEqual([]);
  });

  it("each table's default is the schema's", () => {
    const wrong: string[] = [];
    for (const [name, value] of defaults) {
      if (value === undefined) continue;
      for (const row of documented.get(name) ?? [])
        if (!row.default.includes(`\`${value}\``))
          wrong.push(`${name}: README.md:${row.line} says ${row.default}, the code \`${value}\``);
    }
    expect(wrong).toEqual([]);
  });
});

describe("README's Command line documents `switchboard help`", () => {
  /** The section, up to its first subsection (the build, whose npm options are not the command's). */
  const section = README.slice(README.indexOf('\n## Command line\n'), README.indexOf('\n### The build\n'));
  const options = (text: string) =>
    new Set([...text.matchAll(/(?<![\w-])--([a-z][a-z-]*)/g)].map((m) => m[1]!));

  it('the same commands and options', async () => {
    const help = await runSwitchboard(['help'], {});
    expect(help.code).toBe(0);
    // `  queue status [--json]`, `  agent add --name N …`, `  check [bot]`: the command, one or two words.
    const commands = [...help.stdout.matchAll(/^ {2}([a-z][a-z-]*(?: [a-z][a-z-]*)?)(?= |$)/gm)].map(
      (m) => m[1]!,
    );
    expect(commands.length).toBeGreaterThan(10);
    for (const command of commands)
      expect(section, `README's Command line names switchboard ${command}`).toContain(
        `switchboard ${command}`,
      );
    expect([...options(section)].sort()).toEqual([...options(help.stdout)].sort());
  });
});

describe("README's route tables agree with the OpenAPI document", () => {
  it('every status a row gives (`201 …`, `409 not_holder`) is one the route answers', () => {
    const paths = buildOpenApiDocument({ version: 'readme' }).paths as Record<
      string,
      Record<string, { responses: Record<string, unknown> }>
    >;
    const byRoute = new Map<string, string[]>();
    for (const [template, item] of Object.entries(paths))
      for (const [method, op] of Object.entries(item))
        byRoute.set(
          `${method.toUpperCase()} ${template.replace(/\{[^}]+\}/g, '{}')}`,
          Object.keys(op.responses),
        );
    const wrong: string[] = [];
    let checked = 0;
    README.split('\n').forEach((line, i) => {
      if (!line.startsWith('|')) return;
      const [first = '', ...rest] = line.split(/(?<!\\)\|/).slice(1, -1);
      // `POST …/{session_id}/claim` in the agent API's table is short for its conversations' routes.
      const routes = [...first.matchAll(/\b(GET|POST|PUT|PATCH|DELETE) ((?:\/api|…\/)[^`\s?]*)/g)].map(
        (m) =>
          `${m[1]} ${m[2]!.replace(/^…\//, '/api/agent/conversations/').replace(/\{[^}]+\}|<[^>]+>/g, '{}')}`,
      );
      // README writes a status at the start of a code span: `202`, `409 not_holder`, `201 {…}`.
      const statuses = [...rest.join('|').matchAll(/`([1-5]\d\d)(?=[ `{])/g)].map((m) => m[1]!);
      for (const route of routes) {
        const listed = byRoute.get(route);
        if (!listed) continue; // outside the document: the channels' webhooks, /api/messages
        checked++;
        for (const status of statuses)
          if (!listed.includes(status))
            wrong.push(`README.md:${i + 1}: ${route} → ${status}, not in the document`);
      }
    });
    expect(checked).toBeGreaterThan(10);
    expect(wrong).toEqual([]);
  });
});
