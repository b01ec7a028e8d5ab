import fs from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { type BotSettings, BotSettingsSchema } from '../../src/config/bots.ts';
import { ScriptLibrary } from '../../src/dialog/library.ts';
import { createDialogHandler, type DialogServices } from '../../src/dialog/runtime.ts';
import type { BotHandler } from '../../src/engine/bot.ts';
import { TurnDraft } from '../../src/engine/turn.ts';
import { type Channel, type Envelope, parseEnvelope } from '../../src/envelope.ts';
import type { SessionSnapshot, Suggestion } from '../../src/store/records.ts';
import { tempDir } from './database.ts';
import { freshSnapshot } from './session-snapshot.ts';

export interface TurnResult {
  replies: { text: string; suggestions?: Suggestion[] }[];
  texts: string[];
  events: { type: string; data: unknown }[];
}

/**
 * A dialog bot run turn by turn in memory, through the engine's own TurnDraft and BotContext:
 * for unit tests of the interpreter. State, memory and history carry over between turns as
 * the engine would commit them.
 */
export class DialogHarness {
  snapshot: SessionSnapshot;
  readonly memory: Map<string, unknown>;
  /** User memory by `${userId} ${key}`: shared with siblings, like the user_memory table. */
  readonly userMemory: Map<string, unknown>;
  readonly logs: Record<string, unknown>[] = [];
  readonly settings: BotSettings;
  private seq = 0;

  private constructor(
    readonly dir: string,
    readonly handler: BotHandler,
    settings: BotSettings,
    options: {
      channel?: Channel;
      userId?: string | null;
      memory?: Map<string, unknown>;
      userMemory?: Map<string, unknown>;
    },
  ) {
    this.settings = settings;
    this.memory = options.memory ?? new Map();
    this.userMemory = options.userMemory ?? new Map();
    this.snapshot = freshSnapshot({ channel: options.channel ?? 'api', userId: options.userId ?? null });
  }

  /** A bot made of these scripts (name → source), in a temp folder of its own. */
  static async create(
    scripts: Record<string, string>,
    options: {
      settings?: Record<string, unknown>;
      services?: Partial<DialogServices>;
      channel?: Channel;
      userId?: string | null;
      memory?: Map<string, unknown>;
      dir?: string;
    } = {},
  ): Promise<DialogHarness> {
    const dir = options.dir ?? (await tempDir('sbt-dialog-'));
    for (const [name, source] of Object.entries(scripts)) await fs.writeFile(path.join(dir, name), source);
    const settings = BotSettingsSchema.parse(options.settings ?? {});
    const { library, errors } = await ScriptLibrary.open(dir, { checkEveryMs: 0 });
    if (errors.length > 0) throw new Error(errors.map((e) => e.message).join('\n'));
    const handler = createDialogHandler({ library, settings, services: options.services });
    return new DialogHarness(dir, handler, settings, options);
  }

  /** Another session of the same bot (same folder, same bot memory). */
  async sibling(options: { channel?: Channel; userId?: string | null } = {}): Promise<DialogHarness> {
    const { library } = await ScriptLibrary.open(this.dir, { checkEveryMs: 0 });
    const handler = createDialogHandler({ library, settings: this.settings });
    return new DialogHarness(this.dir, handler, this.settings, {
      ...options,
      memory: this.memory,
      userMemory: this.userMemory,
    });
  }

  async write(name: string, source: string): Promise<void> {
    const file = path.join(this.dir, name);
    await fs.writeFile(file, source);
    // A different mtime for certain, even on coarse clocks.
    const later = new Date(Date.now() + 5_000 + Math.floor(Math.random() * 1000));
    await fs.utimes(file, later, later);
  }

  get variables(): Record<string, unknown> {
    return this.snapshot.state.variables;
  }

  get state() {
    return this.snapshot.state;
  }

  private envelope(kind: Envelope['kind'], text: string): Envelope {
    this.seq++;
    return parseEnvelope({
      id: `${this.snapshot.session.channel}:${this.snapshot.session.id}:${this.seq}`,
      kind,
      channel: this.snapshot.session.channel,
      bot: 'test',
      from: { id: 'k', name: 'Tester' },
      text,
      receivedAt: new Date().toISOString(),
    });
  }

  private logger() {
    const logs = this.logs;
    const stream = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
        done();
      },
    });
    return pino({ level: 'debug' }, stream);
  }

  private async turn(kind: Envelope['kind'], text: string): Promise<TurnResult> {
    const envelope = this.envelope(kind, text);
    const draft = new TurnDraft(this.snapshot, envelope);
    const ctx = draft.context(this.logger(), {
      botMemory: async (key) => this.memory.get(key) ?? null,
      userMemory: async (userId, key) => this.userMemory.get(`${userId} ${key}`) ?? null,
      history: async () => [],
    });
    if (kind === 'end') await this.handler.onEnd?.(ctx);
    else {
      if (draft.isNewSession) await this.handler.onStart?.(ctx);
      if (kind === 'message') await this.handler.onMessage(ctx);
    }
    const write = draft.toWrite({ at: new Date(), replyStatus: 'sent', expiresAt: null });
    for (const m of write.memory) this.memory.set(m.key, m.value);
    for (const m of write.userMemory ?? []) this.userMemory.set(`${write.userId} ${m.key}`, m.value);
    this.snapshot = JSON.parse(JSON.stringify(draft.committedSnapshot(write)));
    await new Promise((r) => setImmediate(r));
    const replies = draft.replies.map((r) => ({
      text: r.text,
      ...(r.payload.suggestions ? { suggestions: r.payload.suggestions } : {}),
    }));
    return { replies, texts: replies.map((r) => r.text), events: [...draft.events] };
  }

  start(): Promise<TurnResult> {
    return this.turn('start', '');
  }

  /** A message; on a new session the start script runs first, in the same turn. */
  say(text: string): Promise<TurnResult> {
    return this.turn('message', text);
  }

  end(): Promise<TurnResult> {
    return this.turn('end', '');
  }

  async cleanup(): Promise<void> {
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
