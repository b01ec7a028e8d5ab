import { randomUUID } from 'node:crypto';
import { deepCopy } from '../clone.ts';
import type { SessionTemplate } from '../config/session-templates.ts';
import type { Channel, EnvelopeInput } from '../envelope.ts';
import { own, setOwn } from '../own.ts';
import type { SessionStateData, Suggestion } from '../store/records.ts';
import type { ChildWrite } from '../store/sub-sessions.ts';
import {
  BIND_LLM,
  type BotContext,
  type LlmBinder,
  llmBoundTo,
  type ReplyOptions,
  type SessionInfo,
} from './bot.ts';
import { EFFECT_KEYS, type EffectKeysHolder, effectKeysOf } from './effect-keys.ts';
import { outboundEnvelope } from './outbound.ts';

/** Why SEND TO SESSION refused: nothing was sent. */
export type SendRefusal = 'unknown_session' | 'other_bot' | 'ended' | 'sub_session' | 'empty_text';

export class SessionSendError extends Error {
  override name = 'SessionSendError';
  constructor(
    readonly code: SendRefusal,
    message: string,
  ) {
    super(message);
  }
}

/** A sub-session operation that cannot be done (unknown child, nested use, HEAR in a child ...). */
export class SubSessionError extends Error {
  override name = 'SubSessionError';
}

export class UnknownTemplateError extends Error {
  override name = 'UnknownTemplateError';
  constructor(readonly template: string) {
    super(`this bot has no session template "${template}" (session-templates/${template}.json)`);
  }
}

export type DebugTopic = 'session' | 'context' | 'variables';

/** What a turn reads to act on other sessions. */
export interface SessionReads {
  /** A session by id, for SEND TO SESSION (undefined: none by that id). */
  target(
    id: string,
  ): Promise<
    | { id: string; bot: string; channel: Channel; nativeKey: string; ended: boolean; isChild: boolean }
    | undefined
  >;
  /** An open sub-session of `parentId` (undefined: none). */
  child(parentId: string, id: string): Promise<{ state: SessionStateData; version: number } | undefined>;
}

/** The bot's side of it: its templates, its `debug` setting, its knowledge-base limit. */
export interface SessionBotInfo {
  templates: ReadonlyMap<string, SessionTemplate>;
  debug: boolean;
  maxKnowledgeBases: number;
}

interface ChildEntry {
  state: SessionStateData;
  version: number;
  created: boolean;
  ended: boolean;
  changed: boolean;
}

/**
 * What a turn has done to other sessions so far: replies queued for them and sub-sessions made,
 * run or merged. Held like the rest of the turn: copied for a checkpoint or a held-back script
 * run, and only written (by the engine, with the turn) when the turn commits.
 */
export class SessionWork {
  sends: EnvelopeInput[] = [];
  children = new Map<string, ChildEntry>();

  copy(): SessionWork {
    const c = new SessionWork();
    // Most turns send nothing and touch no sub-session (each turn copies its work at least once).
    if (this.sends.length === 0 && this.children.size === 0) return c;
    c.sends = [...this.sends];
    c.children = new Map([...this.children].map(([id, e]) => [id, { ...e, state: deepCopy(e.state) }]));
    return c;
  }

  replaceWith(other: SessionWork): void {
    this.sends = [...other.sends];
    this.children = other.copy().children;
  }

  /** The sub-session rows the turn writes. */
  childWrites(): ChildWrite[] {
    return [...this.children]
      .filter(([, e]) => e.created || e.changed || e.ended)
      .map(([id, e]) => ({
        id,
        created: e.created,
        state: e.state,
        expectedVersion: e.version,
        ended: e.ended,
      }));
  }
}

export interface SessionControlDeps {
  reads: SessionReads;
  bot: SessionBotInfo;
  /** The sending turn's envelope id: with a counter, the id of each reply it sends (replays send nothing twice). */
  turnId: string;
}

/**
 * `ctx.sessions`: SEND TO SESSION, sub-sessions (CREATE SUB SESSION, RUN IN SESSION, MERGE
 * SESSION), APPLY SESSION TEMPLATE and DEBUG SHOW, for dialog scripts and TypeScript bots alike.
 * Everything it does waits in `work` until the turn commits.
 */
export class SessionControl {
  constructor(
    private readonly ctx: BotContext,
    readonly work: SessionWork,
    private readonly deps: SessionControlDeps,
    /** Inside RUN IN SESSION: the child cannot make, run or merge sub-sessions of its own. */
    private readonly inChild = false,
  ) {}

  /** The same operations for another view of the turn (a held-back script run) over a copy of the work. */
  fork(ctx: BotContext): SessionControl {
    return new SessionControl(ctx, this.work.copy(), this.deps, this.inChild);
  }

  /** Takes over what a fork did (its run ended well). */
  adopt(fork: SessionControl): void {
    this.work.replaceWith(fork.work);
  }

  /**
   * SEND TO SESSION: queues `text` as a reply of this bot in another open session of the same bot,
   * through that session's lane (ordered, persisted, delivered on its channel). Never waits for
   * that session; refused with a SessionSendError (nothing sent) for an unknown, ended,
   * sub- or other bot's session.
   */
  async send(sessionId: string, text: string, options?: ReplyOptions): Promise<void> {
    const id = String(sessionId).trim();
    if (String(text).trim() === '')
      throw new SessionSendError('empty_text', 'SEND TO SESSION: nothing to send');
    const target = UUID.test(id) ? await this.deps.reads.target(id) : undefined;
    if (!target || target.bot !== this.ctx.session.bot) {
      // Another bot's session is not told apart from an unknown one: a bot learns nothing of others.
      throw new SessionSendError(
        target ? 'other_bot' : 'unknown_session',
        `SEND TO SESSION: this bot has no session ${id || '""'}`,
      );
    }
    if (target.ended) throw new SessionSendError('ended', `SEND TO SESSION: session ${id} has ended`);
    if (target.isChild)
      throw new SessionSendError(
        'sub_session',
        `SEND TO SESSION: ${id} is a sub-session, which has no lane of its own`,
      );
    const n = this.work.sends.length + 1;
    this.work.sends.push(
      outboundEnvelope(
        { id: target.id, bot: target.bot, channel: target.channel, nativeKey: target.nativeKey },
        {
          id: `${this.deps.turnId}:${n}`,
          text: String(text),
          role: 'assistant',
          origin: { type: 'session', id: this.ctx.session.id },
          ...(options?.suggestions?.length ? { suggestions: options.suggestions } : {}),
          ...(options?.attachments?.length ? { attachments: options.attachments } : {}),
        },
      ),
    );
  }

  /** CREATE SUB SESSION: a child of this session (same person and channel, its own state); returns its id. */
  createSub(): string {
    this.notInChild('CREATE SUB SESSION');
    const id = randomUUID();
    this.work.children.set(id, {
      state: { variables: {}, context: {}, kbs: [], tools: [], suggestions: [], dialog: null },
      version: 0,
      created: true,
      ended: false,
      changed: false,
    });
    return id;
  }

  /**
   * RUN IN SESSION: runs `body` against the child's context, as part of this turn. Its replies are
   * this session's; its variables, context, KBs, tools and suggestions are the child's.
   */
  async runIn(subId: string, body: (child: BotContext) => void | Promise<void>): Promise<void> {
    this.notInChild('RUN IN SESSION');
    const entry = await this.childEntry(subId, 'RUN IN SESSION');
    const state = deepCopy(entry.state);
    const child = childContext(
      this.ctx,
      subId,
      state,
      (childCtx) => new SessionControl(childCtx, this.work, this.deps, true),
    );
    await body(child);
    // Only a run that ended well changes the child (a failure leaves it as it was).
    entry.state = state;
    entry.changed = true;
  }

  /** MERGE SESSION: the child's variables into this session (the child's win), and the child ends. */
  async merge(subId: string): Promise<void> {
    this.notInChild('MERGE SESSION');
    const entry = await this.childEntry(subId, 'MERGE SESSION');
    for (const [name, value] of Object.entries(entry.state.variables)) this.ctx.set(name, deepCopy(value));
    entry.ended = true;
  }

  /** APPLY SESSION TEMPLATE: the template's KBs, tools, context, suggestions and variables join the session's. */
  applyTemplate(name: string): void {
    const template = this.deps.bot.templates.get(String(name).trim());
    if (!template) throw new UnknownTemplateError(String(name));
    const state = this.ctx.state;
    const kbs = [...state.kbs, ...template.kbs.filter((k) => !state.kbs.includes(k))];
    const max = this.deps.bot.maxKnowledgeBases;
    if (kbs.length > max)
      throw new SubSessionError(
        `APPLY SESSION TEMPLATE "${name}": a session may use at most ${max} knowledge bases at once`,
      );
    state.kbs = kbs;
    for (const t of template.tools) if (!state.tools.includes(t)) state.tools.push(t);
    for (const [k, v] of Object.entries(template.context)) setOwn(state.context, k, v);
    for (const s of template.suggestions) {
      const suggestion: Suggestion =
        s.value === undefined ? { text: s.text } : { text: s.text, value: s.value };
      const at = state.suggestions.findIndex((x) => x.text === s.text);
      if (at >= 0) state.suggestions[at] = suggestion;
      else state.suggestions.push(suggestion);
    }
    for (const [k, v] of Object.entries(template.variables)) this.ctx.set(k, deepCopy(v));
    this.ctx.log('session.template', { name });
  }

  /**
   * DEBUG SHOW: a snapshot written to the session's debug log (a `session.debug` event, shown by
   * the admin API); told to the person as well when the bot's `debug` setting is on. Returns it.
   */
  debugShow(topic: DebugTopic): Record<string, unknown> {
    const snapshot = debugSnapshot(this.ctx, topic);
    this.ctx.log('session.debug', { topic, snapshot });
    if (this.deps.bot.debug) this.ctx.talk(`[debug ${topic}] ${JSON.stringify(snapshot, null, 2)}`);
    return snapshot;
  }

  private notInChild(what: string): void {
    if (this.inChild) throw new SubSessionError(`${what} cannot be used inside a sub-session`);
  }

  private async childEntry(subId: string, what: string): Promise<ChildEntry> {
    const id = String(subId).trim();
    const known = this.work.children.get(id);
    if (known && !known.ended) return known;
    const loaded = !known && UUID.test(id) ? await this.deps.reads.child(this.ctx.session.id, id) : undefined;
    if (!loaded) throw new SubSessionError(`${what}: ${id || '""'} is no open sub-session of this session`);
    const entry: ChildEntry = { ...loaded, created: false, ended: false, changed: false };
    this.work.children.set(id, entry);
    return entry;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The snapshot DEBUG SHOW writes: ids, auth level and counters / context and KBs / variables. */
export function debugSnapshot(ctx: BotContext, topic: DebugTopic): Record<string, unknown> {
  const { session, state } = ctx;
  switch (topic) {
    case 'session':
      return {
        sessionId: session.id,
        bot: session.bot,
        channel: session.channel,
        userId: session.userId,
        authLevel: session.authLevel,
        createdAt: session.createdAt,
        lastActivityAt: session.lastActivityAt,
        messageCount: session.messageCount,
        isNew: session.isNew,
        ...(session.parentId ? { parentId: session.parentId } : {}),
        waitingForInput: state.dialog !== null && state.dialog !== undefined,
      };
    case 'context':
      return { context: { ...state.context }, kbs: [...state.kbs], tools: [...state.tools] };
    case 'variables':
      return { variables: deepCopy(state.variables) };
  }
}

/**
 * The BotContext a RUN IN SESSION body sees: the child's own state and identity, the parent's
 * replies, events, memory and LLM. It cannot wait for an answer, nor end anything.
 */
function childContext(
  parent: BotContext,
  childId: string,
  state: SessionStateData,
  control: (child: BotContext) => SessionControl,
): BotContext {
  const session: SessionInfo = {
    ...parent.session,
    id: childId,
    parentId: parent.session.id,
    isNew: false,
  };
  let sessions: SessionControl | undefined;
  const child: BotContext & LlmBinder & EffectKeysHolder = {
    session,
    envelope: parent.envelope,
    kind: parent.kind,
    text: parent.text,
    logger: parent.logger,
    state,
    talk: (text, options) => parent.talk(text, options),
    files: parent.files,
    file: (ref) => parent.file(ref),
    readFile: (file) => parent.readFile(file),
    get: <T>(name: string) => own(state.variables, name) as T | undefined,
    set(name, value) {
      if (value === undefined) delete state.variables[name];
      else setOwn(state.variables, name, value);
    },
    memory: parent.memory,
    user: parent.user,
    history: (limit) => parent.history(limit),
    log: (type, data) => parent.log(type, { ...(data as object), subSessionId: childId }),
    end() {
      throw new SubSessionError('a sub-session cannot end a session: MERGE SESSION ends it');
    },
    record: (note) => parent.record(note),
    handoff() {
      throw new SubSessionError('a sub-session cannot be handed to people: TRANSFER SESSION in its parent');
    },
    availableAgent: (queue) => parent.availableAgent(queue),
    get llm() {
      return llmBoundTo(parent, child);
    },
    [BIND_LLM]: (derived: BotContext) => llmBoundTo(parent, derived),
    // What the child does outside the hub is its parent turn's (one turn, one count).
    get [EFFECT_KEYS]() {
      return effectKeysOf(parent);
    },
    get sessions() {
      sessions ??= control(child);
      return sessions;
    },
  };
  return child;
}
