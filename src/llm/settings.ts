import { z } from 'zod';

/** Names of environment variables: what `apiKeyEnv` and `headersFromEnv` hold (never the secret itself). */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** What OpenAI-compatible APIs accept as a function name. */
export const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Text search configurations PostgreSQL (and PGlite) ship with. */
export const KB_LANGUAGES = [
  'simple',
  'arabic',
  'armenian',
  'basque',
  'catalan',
  'danish',
  'dutch',
  'english',
  'finnish',
  'french',
  'german',
  'greek',
  'hindi',
  'hungarian',
  'indonesian',
  'irish',
  'italian',
  'lithuanian',
  'nepali',
  'norwegian',
  'portuguese',
  'romanian',
  'russian',
  'serbian',
  'spanish',
  'swedish',
  'tamil',
  'turkish',
  'yiddish',
] as const;

export const KnowledgeSettingsSchema = z
  .object({
    /** Text search language of the bot's knowledge bases (stemming and stop words). */
    language: z.enum(KB_LANGUAGES).default('english'),
    /** Most chunks put into one prompt. */
    maxChunks: z.number().int().min(0).max(50).default(4),
    /** Most tokens the knowledge layer may take. */
    maxTokens: z.number().int().min(0).default(1024),
    /** Size a document is cut into, in tokens. */
    chunkTokens: z.number().int().min(32).max(4000).default(300),
  })
  .strict();

const HttpToolSchema = z
  .object({
    url: z.url({ protocol: /^https?$/ }),
    method: z.enum(['POST', 'GET']).default('POST'),
    headers: z.record(z.string(), z.string()).default({}),
    /** Header name → name of the environment variable holding its value (tokens stay out of the file). */
    headersFromEnv: z.record(z.string(), z.string().regex(ENV_NAME)).default({}),
    timeoutMs: z.number().int().min(100).max(300_000).default(10_000),
    /** Most bytes of the response read; the rest is never downloaded. */
    maxResponseBytes: z
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024)
      .default(64 * 1024),
  })
  .strict();

export const ToolDeclarationSchema = z
  .object({
    name: z.string().regex(TOOL_NAME, 'letters, digits, _ and -, at most 64'),
    description: z.string().min(1).max(2000),
    /** JSON schema of the arguments (an object schema). */
    parameters: z
      .record(z.string(), z.unknown())
      .refine((p) => p.type === 'object', 'must be a JSON schema with "type": "object"')
      .default({ type: 'object', properties: {} }),
    /** A script in the bot's `tools/` folder; the arguments are its variables, what it TALKs is the result. */
    script: z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*\.bas$/, "a .bas file name in the bot's tools/ folder")
      .optional(),
    /** An HTTP endpoint; POST gets the arguments as a JSON body, GET as the query string. The body is the result. */
    http: HttpToolSchema.optional(),
  })
  .strict()
  .refine((t) => (t.script === undefined) !== (t.http === undefined), 'give either "script" or "http"');
export type ToolDeclaration = z.infer<typeof ToolDeclarationSchema>;

/**
 * The `llm` block of `bot.json`. A bot without one has no LLM: its fallback stays its
 * `defaultReply`. The API key is never in the file: `apiKeyEnv` names the environment variable.
 */
export const LlmSettingsSchema = z.preprocess(
  (raw, ctx) => {
    if (typeof raw === 'object' && raw !== null && 'apiKey' in raw)
      ctx.addIssue({
        code: 'custom',
        path: ['apiKey'],
        message: 'keep the key out of bot.json: name its environment variable in "apiKeyEnv"',
      });
    return raw;
  },
  z
    .object({
      /** An OpenAI-compatible API: `https://api.openai.com/v1`, `http://localhost:11434/v1` (Ollama), … */
      baseUrl: z.url({ protocol: /^https?$/ }),
      model: z.string().min(1),
      /** Name of the environment variable holding the API key (sent as `Authorization: Bearer`). */
      apiKeyEnv: z.string().regex(ENV_NAME).optional(),
      /** The system layer: who the bot is and how it answers. */
      systemPrompt: z.string().max(20_000).default('You are a helpful assistant.'),
      /** Added to the system layer: tone and manner. */
      personality: z.string().max(4000).optional(),
      /** Tokens of the model's context this bot uses: the prompt plus the reply. */
      tokenBudget: z.number().int().min(256).default(4096),
      /** Tokens kept free for the reply (sent as `max_tokens`). */
      replyTokens: z.number().int().min(16).default(512),
      /** Most earlier messages considered for the prompt. */
      historyLimit: z.number().int().min(0).max(1000).default(50),
      temperature: z.number().min(0).max(2).optional(),
      /** The model accepts images: the pictures a person sends with a message go with it (as data URLs). */
      vision: z.boolean().default(false),
      /** Earlier messages left out of the prompt (and not yet summarised) that make the LLM write a summary; 0 never. */
      summaryThreshold: z.number().int().min(0).default(20),
      /** Longest summary, in tokens. */
      summaryTokens: z.number().int().min(32).default(300),
      /** The tokenizer the budget is counted with. */
      encoding: z.enum(['o200k_base', 'cl100k_base']).default('o200k_base'),
      /** Longest wait for the response to start, and between two streamed events (keep-alive comments do not count). */
      timeoutMs: z.number().int().min(100).max(600_000).default(60_000),
      /**
       * Longest one request to the model may take in all, from sending it to its last streamed
       * part, retries included; unset: DURATION_IN_TIMEOUTS (5) × timeoutMs.
       */
      maxDurationMs: z.number().int().min(100).max(3_600_000).optional(),
      /** Retries of a request that got 429, 5xx, a timeout or no connection. */
      maxRetries: z.number().int().min(0).max(10).default(3),
      /** Rounds of tool calls the model may make in one answer. */
      maxToolRounds: z.number().int().min(0).max(20).default(4),
      knowledge: KnowledgeSettingsSchema.prefault({}),
      /** Tools a session can expose with `USE TOOL "name"`. */
      tools: z.array(ToolDeclarationSchema).default([]),
    })
    .strict()
    .refine((s) => s.replyTokens < s.tokenBudget / 2, 'replyTokens must be less than half of tokenBudget')
    .refine(
      (s) => s.maxDurationMs === undefined || s.maxDurationMs >= s.timeoutMs,
      'maxDurationMs must be at least timeoutMs',
    )
    .refine(
      (s) => new Set(s.tools.map((t) => t.name)).size === s.tools.length,
      'two tools have the same name',
    ),
);
export type LlmSettings = z.infer<typeof LlmSettingsSchema>;

/**
 * The variable `apiKeyEnv` names when it is not set (or empty), else undefined. The bot's
 * requests then carry no key: an API that wants one refuses each (401), and the person gets the
 * bot's apology. start warns (`llm.api_key_missing`) and runs the hub's other bots;
 * `switchboard check` reports it as a problem.
 */
export function unsetApiKeyVariable(llm: LlmSettings, env: NodeJS.ProcessEnv): string | undefined {
  return llm.apiKeyEnv && !env[llm.apiKeyEnv] ? llm.apiKeyEnv : undefined;
}
export type KnowledgeSettings = z.infer<typeof KnowledgeSettingsSchema>;
