import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';

/** Where a bot keeps its session templates: `config/bots/<bot>/session-templates/<name>.json`. */
export const TEMPLATES_DIR = 'session-templates';
const TEMPLATE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$/;

/**
 * What `APPLY SESSION TEMPLATE "name"` (ctx.sessions.applyTemplate) adds to a session: knowledge
 * bases and tools join the session's, context strings, suggestions and variables are set (the
 * template's win over the session's of the same name).
 */
export const SessionTemplateSchema = z
  .object({
    description: z.string().max(1000).optional(),
    kbs: z.array(z.string().min(1).max(200)).max(100).default([]),
    tools: z.array(z.string().min(1).max(200)).max(100).default([]),
    context: z.record(z.string().min(1).max(200), z.string().max(100_000)).default({}),
    suggestions: z
      .array(z.object({ text: z.string().min(1).max(1000), value: z.string().max(1000).optional() }).strict())
      .max(50)
      .default([]),
    variables: z.record(z.string().min(1).max(200), z.unknown()).default({}),
  })
  .strict();
export type SessionTemplate = z.infer<typeof SessionTemplateSchema>;

export interface TemplateLoad {
  templates: Map<string, SessionTemplate>;
  /** What is wrong with the bad templates: `file` is relative to the bot's folder. */
  errors: { file: string; field?: string; message: string }[];
}

/** Reads and validates every template of a bot folder; a missing folder is no templates. */
export async function loadSessionTemplates(botDir: string): Promise<TemplateLoad> {
  const dir = path.join(botDir, TEMPLATES_DIR);
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  const templates = new Map<string, SessionTemplate>();
  const errors: TemplateLoad['errors'] = [];
  for (const entry of entries) {
    if (!entry.isFile() || !entry.name.endsWith('.json')) continue;
    const file = path.join(TEMPLATES_DIR, entry.name);
    const name = entry.name.slice(0, -'.json'.length);
    if (!TEMPLATE_NAME.test(name)) {
      errors.push({ file, message: 'a template name is letters, digits, - and _' });
      continue;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(await fs.readFile(path.join(dir, entry.name), 'utf8'));
    } catch (err) {
      errors.push({ file, message: `not valid JSON (${(err as Error).message})` });
      continue;
    }
    const parsed = SessionTemplateSchema.safeParse(raw);
    if (!parsed.success) {
      for (const i of parsed.error.issues)
        errors.push({ file, field: i.path.join('.') || '(root)', message: i.message });
      continue;
    }
    templates.set(name, parsed.data);
  }
  return { templates, errors };
}
