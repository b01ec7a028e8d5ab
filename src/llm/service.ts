import { Counter, Histogram } from 'prom-client';
import { type Bus, sessionTopic, type TurnChunk } from '../bus/bus.ts';
import { channels } from '../channels/registry.ts';
import type { BotRegistry, BotSettings } from '../config/bots.ts';
import type { DialogServices } from '../dialog/runtime.ts';
import { type BotContext, type BotLlm, NoLlmConfiguredError } from '../engine/bot.ts';
import type { LlmProvider } from '../engine/turn.ts';
import type { Envelope } from '../envelope.ts';
import type { KnowledgeSource } from '../kb/indexer.ts';
import { searchChunks } from '../kb/store.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Db } from '../store/db.ts';
import type { MessageRecord } from '../store/records.ts';
import { type ChatMessage, type ChatRequest, LlmClient, LlmError } from './client.ts';
import { assembleContext, type ContextInput, type HistoryItem, logContext } from './context.ts';
import { imageTokens } from './image-tokens.ts';
import { toolSpan } from './llm-spans.ts';
import { type LlmSettings, unsetApiKeyVariable } from './settings.ts';
import { summaryRequest } from './summary.ts';
import { type TokenCounter, tokenCounter } from './tokens.ts';
import { BotTools } from './tools.ts';

/** Earlier messages read past `historyLimit`: what a summary can fold in at once. */
export const SUMMARY_SOURCE_LIMIT = 200;
/** Separates what the model said before a tool call from what it says after. */
const ROUND_SEPARATOR = '\n\n';
/**
 * Most tool calls of one round that run; the model is told that those beyond were not run.
 * Each result takes room in the prompt (see TOOL_EXCHANGE_SHARE) and may have side effects.
 */
export const MAX_TOOL_CALLS_PER_ROUND = 8;

interface BotRuntime {
  bot: string;
  settings: BotSettings;
  llm: LlmSettings;
  client: LlmClient;
  tools: BotTools;
  counter: TokenCounter;
  /** The variable `apiKeyEnv` names, when it is not set: each failed request's log line names it. */
  unsetKey?: string;
}

export interface LlmServiceOptions {
  db: Db;
  bus: Bus;
  logger: Logger;
  bots: BotRegistry;
  metrics?: Metrics;
  env?: NodeJS.ProcessEnv;
}

/** Earlier messages of a session after `afterSeq`, oldest first, at most `limit` (the newest ones). */
async function recentHistory(
  db: Db,
  sessionId: string,
  afterSeq: number,
  limit: number,
): Promise<MessageRecord[]> {
  const { rows } = await db.query<Record<string, unknown>>(
    `SELECT seq, role, content, payload FROM messages WHERE session_id = $1 AND seq > $2
     ORDER BY seq DESC LIMIT $3`,
    [sessionId, afterSeq, limit],
  );
  return rows
    .map(
      (r) =>
        ({ seq: Number(r.seq), role: r.role, content: r.content, payload: r.payload ?? {} }) as MessageRecord,
    )
    .reverse();
}

/** Stored rows as chat messages: a tool row is the model's call and the result; status rows are left out. */
export function historyItems(
  rows: readonly Pick<MessageRecord, 'seq' | 'role' | 'content' | 'payload'>[],
): HistoryItem[] {
  const items: HistoryItem[] = [];
  for (const row of rows) {
    if (row.role === 'user' || row.role === 'assistant') {
      if (row.content.trim() !== '')
        items.push({ seq: row.seq, messages: [{ role: row.role, content: row.content }] });
    } else if (row.role === 'tool') {
      const p = row.payload as { tool?: unknown; callId?: unknown; arguments?: unknown };
      if (typeof p.tool !== 'string') continue;
      const id = typeof p.callId === 'string' && p.callId ? p.callId : `call_${row.seq}`;
      items.push({
        seq: row.seq,
        messages: [
          {
            role: 'assistant',
            content: null,
            tool_calls: [
              {
                id,
                type: 'function',
                function: { name: p.tool, arguments: typeof p.arguments === 'string' ? p.arguments : '{}' },
              },
            ],
          },
          { role: 'tool', tool_call_id: id, content: row.content },
        ],
      });
    }
  }
  return items;
}

/**
 * Bots' LLMs: builds each request from the session (context assembly, knowledge, summary,
 * tools), calls the model, runs the tools it asks for, streams to the channels that show it,
 * and leaves every change (tool rows, the summary, the reply) in the turn, to be committed with it.
 */
export class LlmService {
  private readonly runtimes = new Map<string, BotRuntime>();
  /** Chunk numbers per envelope: they count from 0 across the turn's LLM calls. */
  private readonly chunkIndex = new WeakMap<Envelope, { next: number }>();
  private readonly requests: Counter<'bot' | 'outcome'> | undefined;
  private readonly promptTokens: Counter<'bot'> | undefined;
  private readonly seconds: Histogram<'bot'> | undefined;

  private constructor(private readonly o: LlmServiceOptions) {
    const registry = o.metrics?.registry;
    if (registry) {
      this.requests = new Counter({
        name: 'switchboard_llm_requests_total',
        help: "Requests to bots' LLMs (after retries) by outcome",
        labelNames: ['bot', 'outcome'] as const,
        registers: [registry],
      });
      this.promptTokens = new Counter({
        name: 'switchboard_llm_prompt_tokens_total',
        help: "Prompt tokens sent to bots' LLMs, as counted by the context assembly",
        labelNames: ['bot'] as const,
        registers: [registry],
      });
      this.seconds = new Histogram({
        name: 'switchboard_llm_request_seconds',
        help: 'Time one LLM request takes, retries included',
        labelNames: ['bot'] as const,
        buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64],
        registers: [registry],
      });
    }
  }

  /** Sets up every bot with an `llm` block: its client and its tools (a tool that cannot run stops the start). */
  static async create(o: LlmServiceOptions): Promise<LlmService> {
    const service = new LlmService(o);
    const env = o.env ?? process.env;
    for (const name of o.bots.names()) {
      const bot = o.bots.get(name);
      const llm = bot.settings.llm;
      if (!llm) continue;
      const apiKey = llm.apiKeyEnv ? env[llm.apiKeyEnv] : undefined;
      // One bot's missing key fails that bot's requests, each answered with its apology: the
      // hub's other bots run (README, "LLM and knowledge bases"; `switchboard check` reports it).
      const unsetKey = unsetApiKeyVariable(llm, env);
      if (unsetKey) o.logger.warn({ event: 'llm.api_key_missing', bot: name, variable: unsetKey });
      service.runtimes.set(name, {
        bot: name,
        settings: bot.settings,
        llm,
        client: new LlmClient({
          baseUrl: llm.baseUrl,
          model: llm.model,
          apiKey,
          timeoutMs: llm.timeoutMs,
          ...(llm.maxDurationMs !== undefined ? { maxDurationMs: llm.maxDurationMs } : {}),
          maxRetries: llm.maxRetries,
          logger: o.logger.child({ bot: name }),
        }),
        tools: await BotTools.load(bot.dir, bot.settings, env),
        counter: tokenCounter(llm.encoding),
        ...(unsetKey ? { unsetKey } : {}),
      });
      const systemTokens = tokenCounter(llm.encoding).text(systemLayer(llm));
      if (systemTokens > (llm.tokenBudget - llm.replyTokens) / 2)
        o.logger.warn({
          event: 'llm.system_prompt_large',
          bot: name,
          tokens: systemTokens,
          budget: llm.tokenBudget,
        });
    }
    return service;
  }

  has(bot: string): boolean {
    return this.runtimes.has(bot);
  }

  /** The bots whose knowledge bases are indexed: those with an LLM. */
  knowledgeSources(): KnowledgeSource[] {
    return [...this.runtimes.values()].map((r) => ({
      bot: r.bot,
      dir: this.o.bots.get(r.bot).dir,
      language: r.llm.knowledge.language,
      chunkTokens: r.llm.knowledge.chunkTokens,
    }));
  }

  /** What the engine gives each turn's BotContext as `ctx.llm`. */
  provider(): LlmProvider {
    return Object.assign((ctx: BotContext) => this.forContext(ctx), {
      configured: (bot: string) => this.has(bot),
    });
  }

  forContext(ctx: BotContext): BotLlm {
    const configured = this.runtimes.has(ctx.session.bot);
    return {
      configured,
      reply: async (options = {}) => this.answer(ctx, options.prompt ?? ctx.text, true),
      ask: async (prompt) => this.answer(ctx, prompt, false),
    };
  }

  private runtime(bot: string): BotRuntime {
    const rt = this.runtimes.get(bot);
    if (!rt) throw new NoLlmConfiguredError();
    return rt;
  }

  private async answer(ctx: BotContext, prompt: string, talk: boolean): Promise<string> {
    const rt = this.runtime(ctx.session.bot);
    const { llm } = rt;
    const logger = ctx.logger;
    const purpose = talk ? 'reply' : 'ask';
    const summary = ctx.state.summary ?? null;
    const rows = await recentHistory(
      this.o.db,
      ctx.session.id,
      summary?.throughSeq ?? 0,
      llm.historyLimit + (llm.summaryThreshold > 0 ? SUMMARY_SOURCE_LIMIT : 0),
    );
    const history = historyItems(rows);
    const input: ContextInput = {
      system: systemLayer(llm),
      summary: summary?.text ?? null,
      knowledge: await this.knowledge(rt, ctx, prompt),
      context: ctx.state.context,
      tools: rt.tools.specs(ctx.state.tools),
      history,
      historyLimit: llm.historyLimit,
      message: prompt,
      pending: [],
      budget: llm.tokenBudget - llm.replyTokens,
      knowledgeMaxChunks: llm.knowledge.maxChunks,
      knowledgeMaxTokens: llm.knowledge.maxTokens,
    };
    for (const name of ctx.state.tools)
      if (!rt.tools.has(name)) logger.warn({ event: 'llm.tool_unknown', tool: name });

    // The person's pictures count in the budget (an estimate per picture, image-tokens.ts):
    // those that do not fit after the system layer and the message are left out.
    const pictures = llm.vision && prompt === ctx.text ? await visionImages(ctx, logger) : [];
    if (pictures.length) input.images = pictures.map((p) => p.tokens);
    let assembled = assembleContext(input, rt.counter);
    if (llm.summaryThreshold > 0 && assembled.dropped.length >= llm.summaryThreshold) {
      const text = await this.summarise(rt, ctx, summary?.text ?? null, assembled.dropped);
      if (text) {
        const throughSeq = assembled.dropped.at(-1)!.seq;
        ctx.state.summary = { text, throughSeq, updatedAt: new Date().toISOString() };
        input.summary = text;
        input.history = history.filter((h) => h.seq > throughSeq);
        assembled = assembleContext(input, rt.counter);
      }
    }

    const images = pictures.slice(0, assembled.imagesKept).map((p) => p.url);
    if (assembled.imagesKept < pictures.length)
      logger.warn({
        event: 'llm.images_over_budget',
        sent: assembled.imagesKept,
        left: pictures.length - assembled.imagesKept,
      });
    const declared = channels.get(ctx.session.channel);
    const stream = talk && declared?.delivery === 'live' && declared.renders.streaming;
    let published = Promise.resolve();
    const publish = (text: string) => {
      const chunk = this.chunkEvent(ctx, text);
      // In order, one after the other: a widget appends them as they come.
      published = published.then(() =>
        this.o.bus.publish(sessionTopic(ctx.session.id), chunk).catch((err: Error) => {
          logger.warn({ event: 'llm.chunk_publish_failed', err: err.message });
        }),
      );
    };

    const pending: ChatMessage[] = [];
    let reply = '';
    try {
      for (let round = 0; ; round++) {
        // Tool results too large for the budget even when cut: one last call, without tools.
        if (assembled.withoutTools)
          logger.warn({ event: 'llm.tool_results_over_budget', round, budget: assembled.budget });
        const toolsAllowed =
          !assembled.withoutTools && assembled.tools.length > 0 && round < llm.maxToolRounds;
        logContext(logger, assembled, purpose);
        const request: ChatRequest = {
          messages: assembled.messages,
          tools: assembled.tools,
          toolChoice: toolsAllowed ? 'auto' : 'none',
          maxTokens: llm.replyTokens,
          temperature: llm.temperature,
          ...(images.length ? { images } : {}),
        };
        let roundStarted = false;
        const onDelta = stream
          ? (text: string) => {
              if (!roundStarted) {
                roundStarted = true;
                if (reply !== '') {
                  reply += ROUND_SEPARATOR;
                  publish(ROUND_SEPARATOR);
                }
              }
              reply += text;
              publish(text);
            }
          : undefined;
        const result = await this.call(
          rt,
          request,
          logger,
          { purpose, round, tokens: assembled.tokens },
          onDelta,
        );
        if (!stream && result.content !== '') reply += (reply === '' ? '' : ROUND_SEPARATOR) + result.content;
        if (result.toolCalls.length === 0 || !toolsAllowed) break;
        pending.push({ role: 'assistant', content: result.content || null, tool_calls: result.toolCalls });
        if (result.toolCalls.length > MAX_TOOL_CALLS_PER_ROUND)
          logger.warn({
            event: 'llm.tool_calls_capped',
            round,
            asked: result.toolCalls.length,
            ran: MAX_TOOL_CALLS_PER_ROUND,
          });
        for (const [index, call] of result.toolCalls.entries()) {
          if (index >= MAX_TOOL_CALLS_PER_ROUND) {
            // Every call needs an answer in the protocol: this one says why there is no result.
            pending.push({
              role: 'tool',
              tool_call_id: call.id,
              content: `error: not run: at most ${MAX_TOOL_CALLS_PER_ROUND} tool calls are run per round`,
            });
            continue;
          }
          const outcome = await toolSpan(call, () => rt.tools.run(call, ctx, ctx.state.tools));
          logger[outcome.ok ? 'info' : 'warn']({
            event: outcome.ok ? 'llm.tool_ran' : 'llm.tool_failed',
            tool: call.function.name,
            round,
            ...(outcome.ok ? {} : { err: outcome.content }),
          });
          ctx.record({
            role: 'tool',
            text: outcome.content,
            payload: { tool: call.function.name, callId: call.id, arguments: call.function.arguments },
          });
          pending.push({ role: 'tool', tool_call_id: call.id, content: outcome.content });
        }
        assembled = assembleContext({ ...input, summary: input.summary, pending }, rt.counter);
      }
    } finally {
      await published;
    }
    if (!talk) return reply;
    if (reply.trim() === '') {
      logger.warn({ event: 'llm.empty_reply', model: rt.client.model });
      reply = rt.settings.defaultReply;
    }
    ctx.talk(reply);
    return reply;
  }

  private async call(
    rt: BotRuntime,
    request: ChatRequest,
    logger: Logger,
    meta: { purpose: string; round?: number; tokens: number },
    onDelta?: (text: string) => void,
  ) {
    const started = process.hrtime.bigint();
    logger.debug({
      event: 'llm.request',
      model: rt.client.model,
      ...meta,
      stream: Boolean(onDelta),
      request,
    });
    try {
      const result = await rt.client.complete(request, { onDelta });
      this.requests?.inc({ bot: rt.bot, outcome: 'ok' });
      this.promptTokens?.inc({ bot: rt.bot }, meta.tokens);
      logger.debug({
        event: 'llm.response',
        ...meta,
        finishReason: result.finishReason,
        attempts: result.attempts,
        toolCalls: result.toolCalls.map((c) => c.function.name),
        content: result.content,
      });
      return result;
    } catch (err) {
      this.requests?.inc({ bot: rt.bot, outcome: err instanceof LlmError ? err.name : 'error' });
      logger.error({
        event: 'llm.request_failed',
        model: rt.client.model,
        ...meta,
        err: (err as Error).message,
        ...(rt.unsetKey ? { apiKeyUnset: rt.unsetKey } : {}),
      });
      throw err;
    } finally {
      this.seconds?.observe({ bot: rt.bot }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  }

  /** The session's knowledge bases' best chunks for the person's message (and the script's prompt). */
  private async knowledge(rt: BotRuntime, ctx: BotContext, prompt: string) {
    const kbs = ctx.state.kbs;
    const { maxChunks, language } = rt.llm.knowledge;
    if (kbs.length === 0 || maxChunks === 0) return [];
    const text = ctx.text && ctx.text !== prompt ? `${ctx.text} ${prompt}` : prompt;
    // A few more than fit, so the log shows what the budget cut.
    const matches = await searchChunks(this.o.db, { bot: rt.bot, kbs, text, language, limit: maxChunks * 2 });
    if (matches.length === 0) ctx.logger.debug({ event: 'llm.knowledge_none', kbs });
    // Which knowledge bases answered (the dashboard's knowledge chart).
    else ctx.log('kb.used', { kbs: [...new Set(matches.map((m) => m.kb))] });
    return matches.map((m) => ({ kb: m.kb, source: m.path, text: m.content }));
  }

  /** Folds the messages that left the prompt into the session's summary; undefined when that failed. */
  private async summarise(
    rt: BotRuntime,
    ctx: BotContext,
    previous: string | null,
    dropped: HistoryItem[],
  ): Promise<string | undefined> {
    const request = summaryRequest(
      previous,
      dropped,
      rt.counter,
      rt.llm.tokenBudget - rt.llm.summaryTokens,
      rt.llm.summaryTokens,
    );
    try {
      const result = await this.call(rt, request, ctx.logger, {
        purpose: 'summary',
        tokens: rt.counter.request(request.messages),
      });
      const text = result.content.trim();
      ctx.logger.debug({
        event: 'llm.summary_written',
        messages: dropped.length,
        throughSeq: dropped.at(-1)!.seq,
        tokens: rt.counter.text(text),
      });
      return text || undefined;
    } catch (err) {
      // Without a new summary the answer still comes: the older messages are only cut.
      ctx.logger.warn({ event: 'llm.summary_failed', err: (err as Error).message });
      return undefined;
    }
  }

  private chunkEvent(ctx: BotContext, text: string): TurnChunk {
    let counter = this.chunkIndex.get(ctx.envelope);
    if (!counter) {
      counter = { next: 0 };
      this.chunkIndex.set(ctx.envelope, counter);
    }
    return {
      type: 'turn.chunk',
      sessionId: ctx.session.id,
      envelopeId: ctx.envelope.id,
      index: counter.next++,
      text,
    };
  }
}

function systemLayer(llm: LlmSettings): string {
  return [llm.systemPrompt, llm.personality].filter((s) => s && s.trim() !== '').join('\n\n');
}

/**
 * A dialog bot's LLM services: `x = LLM "…"` asks, and a message no script waits for is
 * answered by the LLM. `service` is looked up at call time (the hub makes it after loading the
 * bots). A bot without an `llm` block keeps the runtime's defaults (its `defaultReply`).
 */
export function llmDialogServices(
  settings: BotSettings,
  service: () => LlmService | undefined,
): Partial<DialogServices> {
  if (!settings.llm) return {};
  const get = () => {
    const s = service();
    if (!s) throw new NoLlmConfiguredError();
    return s;
  };
  return {
    llm: (prompt, ctx) => get().forContext(ctx).ask(prompt),
    fallback: async (ctx) => {
      await get().forContext(ctx).reply();
    },
  };
}

/** Images a vision model is shown with a message: at most this many, each at most this large. */
const VISION_MAX_IMAGES = 4;
const VISION_MAX_BYTES = 5 * 1024 * 1024;
const VISION_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

/**
 * The pictures the person sent with this message, as data URLs (`llm.vision: true`), each with
 * what it costs in the context (OpenAI's tile rule, from the picture's size).
 */
async function visionImages(ctx: BotContext, logger: Logger): Promise<{ url: string; tokens: number }[]> {
  const pictures = ctx.files.filter((f) => VISION_TYPES.has(f.type) && f.size <= VISION_MAX_BYTES);
  const urls: { url: string; tokens: number }[] = [];
  for (const f of pictures.slice(0, VISION_MAX_IMAGES)) {
    try {
      const bytes = await ctx.readFile(f);
      urls.push({ url: `data:${f.type};base64,${bytes.toString('base64')}`, tokens: imageTokens(bytes) });
    } catch (err) {
      logger.warn({ event: 'llm.image_unreadable', fileId: f.id, err: (err as Error).message });
    }
  }
  return urls;
}
