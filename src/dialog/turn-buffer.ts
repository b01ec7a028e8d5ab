import type { BotContext, HistoryNote, ReplyOptions } from '../engine/bot.ts';
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
  readonly context: BotContext;
  private endReason: string | undefined;

  constructor(readonly real: BotContext) {
    this.state = structuredClone(real.state);
    this.context = Object.create(real, {
      state: { get: () => this.state },
      talk: {
        value: (text: string, options?: ReplyOptions) => this.replies.push({ text: String(text), options }),
      },
      get: { value: (name: string) => this.state.variables[name] },
      set: {
        value: (name: string, value: unknown) => {
          if (value === undefined) delete this.state.variables[name];
          else this.state.variables[name] = value;
        },
      },
      memory: {
        value: {
          get: async (key: string) =>
            this.memoryWrites.has(key) ? this.memoryWrites.get(key) : real.memory.get(key),
          set: (key: string, value: unknown) => this.memoryWrites.set(key, value),
        },
      },
      user: {
        value: {
          id: real.user.id,
          memory: {
            get: async (key: string) =>
              this.userMemoryWrites.has(key) ? this.userMemoryWrites.get(key) : real.user.memory.get(key),
            set: (key: string, value: unknown) => this.userMemoryWrites.set(key, value),
          },
        },
      },
      log: { value: (type: string, data?: unknown) => this.events.push({ type, data: data ?? {} }) },
      record: { value: (note: HistoryNote) => this.notes.push({ note, after: this.replies.length }) },
      end: {
        value: (reason?: string) => {
          this.endReason = reason ?? 'ended by bot';
        },
      },
    }) as BotContext;
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
    if (this.endReason) real.end(this.endReason);
  }
}
