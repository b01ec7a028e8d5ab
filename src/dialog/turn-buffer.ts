import { deepCopy } from '../clone.ts';
import {
  BIND_LLM,
  type BotContext,
  type BotLlm,
  type HistoryNote,
  type LlmBinder,
  llmBoundTo,
  normalizeTalk,
  type ReplyContent,
  type ReplyOptions,
} from '../engine/bot.ts';
import { EFFECT_KEYS, type EffectKeys, type EffectKeysHolder, effectKeysOf } from '../engine/effect-keys.ts';
import { own, setOwn } from '../own.ts';
import type { SessionStateData, Suggestion } from '../store/records.ts';

/**
 * What one script run does to a turn, held back until the run ends well: a script that fails
 * half-way leaves no reply, variable or memory write behind — only the bot's apology.
 * `context` is a BotContext over the held-back state, so services the script calls (the LLM)
 * see what the script has set so far.
 */
export class TurnBuffer {
  readonly replies: { text: string; options: ReplyOptions | undefined }[] = [];
  /** History notes (tool results), each with the number of replies talked before it. */
  readonly notes: { note: HistoryNote; after: number }[] = [];
  readonly memoryWrites = new Map<string, unknown>();
  readonly userMemoryWrites = new Map<string, unknown>();
  readonly events: { type: string; data: unknown }[] = [];
  readonly state: SessionStateData;
  readonly context: HeldBackContext;
  private endReason: string | undefined;
  /** `TRANSFER SESSION`, held back like everything else. */
  handoff: Parameters<BotContext['handoff']>[0] | undefined;

  constructor(readonly real: BotContext) {
    this.state = deepCopy(real.state);
    this.context = new HeldBackContext(this, real);
  }

  end(reason?: string): void {
    this.endReason = reason ?? 'ended by bot';
  }

  /**
   * Hands everything to the real turn. The last reply carries `suggestions` (unless it has its
   * own), so that every channel can show them in its own form.
   */
  commit(suggestions: Suggestion[]): void {
    const { real } = this;
    Object.assign(real.state, this.state);
    const recordNotesBefore = (i: number) => {
      for (const n of this.notes) if (n.after === i) real.record(n.note);
    };
    this.replies.forEach((reply, i) => {
      recordNotesBefore(i);
      const last = i === this.replies.length - 1;
      const options =
        last && suggestions.length > 0 && !reply.options?.suggestions?.length
          ? { ...reply.options, suggestions }
          : reply.options;
      real.talk(reply.text, options);
    });
    recordNotesBefore(this.replies.length);
    for (const [key, value] of this.memoryWrites) real.memory.set(key, value);
    for (const [key, value] of this.userMemoryWrites) real.user.memory.set(key, value);
    for (const e of this.events) real.log(e.type, e.data);
    // A run that never used ctx.sessions changed nothing there (and forking costs two copies).
    const forked = this.context.forkedSessions();
    if (forked) real.sessions.adopt(forked);
    if (this.endReason) real.end(this.endReason);
    if (this.handoff) real.handoff(this.handoff);
  }
}

/** The BotContext a script sees: the real turn's, with every write held back in the buffer. */
class HeldBackContext implements BotContext, LlmBinder, EffectKeysHolder {
  readonly session: BotContext['session'];
  readonly envelope: BotContext['envelope'];
  readonly kind: BotContext['kind'];
  readonly text: string;
  private memoryView: BotContext['memory'] | undefined;
  private sessionsView: BotContext['sessions'] | undefined;
  private userView: BotContext['user'] | undefined;

  constructor(
    private readonly buffer: TurnBuffer,
    private readonly real: BotContext,
  ) {
    this.session = real.session;
    this.envelope = real.envelope;
    this.kind = real.kind;
    this.text = real.text;
  }

  get state(): SessionStateData {
    return this.buffer.state;
  }

  get logger(): BotContext['logger'] {
    return this.real.logger;
  }

  /** The real turn's LLM, bound to this context: it sees what the script has set so far. */
  get llm(): BotContext['llm'] {
    return llmBoundTo(this.real, this);
  }

  [BIND_LLM](derived: BotContext): BotLlm {
    return llmBoundTo(this.real, derived);
  }

  /** The real turn's: a call this run makes is the turn's, whether the run is kept or not. */
  get [EFFECT_KEYS](): EffectKeys | undefined {
    return effectKeysOf(this.real);
  }

  /** The session operations this run used, if it used any. */
  forkedSessions(): BotContext['sessions'] | undefined {
    return this.sessionsView;
  }

  /** The real turn's session operations over a copy of what it has done: kept only if the run ends well. */
  get sessions(): BotContext['sessions'] {
    this.sessionsView ??= this.real.sessions.fork(this);
    return this.sessionsView;
  }

  get memory(): BotContext['memory'] {
    const { buffer, real } = this;
    this.memoryView ??= {
      get: async (key) =>
        buffer.memoryWrites.has(key) ? buffer.memoryWrites.get(key) : real.memory.get(key),
      set: (key, value) => void buffer.memoryWrites.set(key, value),
    };
    return this.memoryView;
  }

  get user(): BotContext['user'] {
    const { buffer, real } = this;
    this.userView ??= {
      id: real.user.id,
      memory: {
        get: async (key) =>
          buffer.userMemoryWrites.has(key) ? buffer.userMemoryWrites.get(key) : real.user.memory.get(key),
        set: (key, value) => void buffer.userMemoryWrites.set(key, value),
      },
    };
    return this.userView;
  }

  talk(content: ReplyContent, options?: ReplyOptions): void {
    const reply = normalizeTalk(content, options);
    this.buffer.replies.push({ text: reply.text, options: reply.options });
  }

  get files(): BotContext['files'] {
    return this.real.files;
  }

  file(ref: string): ReturnType<BotContext['file']> {
    return this.real.file(ref);
  }

  readFile(file: Parameters<BotContext['readFile']>[0]): Promise<Buffer> {
    return this.real.readFile(file);
  }

  get<T = unknown>(name: string): T | undefined {
    return own(this.buffer.state.variables, name) as T | undefined;
  }

  set(name: string, value: unknown): void {
    if (value === undefined) delete this.buffer.state.variables[name];
    else setOwn(this.buffer.state.variables, name, value);
  }

  history(limit?: number) {
    return this.real.history(limit);
  }

  log(type: string, data?: unknown): void {
    this.buffer.events.push({ type, data: data ?? {} });
  }

  record(note: HistoryNote): void {
    this.buffer.notes.push({ note, after: this.buffer.replies.length });
  }

  end(reason?: string): void {
    this.buffer.end(reason);
  }

  handoff(options?: Parameters<BotContext['handoff']>[0]): void {
    this.buffer.handoff = options ?? {};
  }

  availableAgent(queue?: string | null): Promise<string> {
    return this.real.availableAgent(queue);
  }
}
