import { z } from 'zod';
import { WEBHOOK_EVENTS, webhookEventSchema } from '../../webhooks/events.ts';
import { WEBHOOK_EVENT_TYPES } from '../../webhooks/settings.ts';
import { OPERATIONS, type Operation, pathParameterSchema, type Scheme } from './operations.ts';
import { ErrorBody } from './shapes.ts';

type Json = Record<string, unknown>;

/** The document, as JSON. */
export type OpenApiDocument = Json;

const STATUS_TEXT: Record<number, string> = {
  400: 'The request is malformed or invalid (`invalid_json`, `invalid_request`, `invalid_text`, …)',
  401: 'No valid credentials (`unauthorized`)',
  403: 'Not allowed (`forbidden`, `admin_disabled`, `csrf`, `cross_origin`)',
  404: 'Not found (`not_found`, `unknown_bot`)',
  409: 'Conflicts with the current state',
  413: 'Too large (`payload_too_large`, `text_too_long`, `file_too_large`, `unsent_files_too_large`)',
  415: 'A file type the bot does not take',
  422: 'Cannot be done on this channel or for this person',
  429: 'Rate limited (`rate_limited`), or too many wrong credentials from this address (`too_many_failures`, `too_many_attempts`); see `Retry-After`',
  501: 'Not configured here (`sign_in_disabled`: no sign-in key for the bot)',
  503: 'A service the hub depends on is away (`unavailable`: PostgreSQL, Redis), or this process is stopping (`stopping`: another one answers); retry after `Retry-After`',
};

/** The answers that say when to try again carry `Retry-After`, in seconds. */
const RETRY_AFTER: Record<number, Json> = {
  429: { 'Retry-After': { description: 'Seconds to wait before trying again', schema: { type: 'integer' } } },
  503: { 'Retry-After': { description: 'Seconds to wait before trying again', schema: { type: 'integer' } } },
};

const SECURITY_SCHEMES: Record<Scheme, Json> = {
  session: {
    type: 'http',
    scheme: 'bearer',
    description: "A session's token, from `POST /api/session` (256 bits, URL-safe base64).",
  },
  admin: { type: 'http', scheme: 'bearer', description: 'The operator token, `ADMIN_TOKEN`.' },
  agentToken: {
    type: 'http',
    scheme: 'bearer',
    description: "An agent's API token (from `POST /api/admin/agents` or `…/{id}/token`).",
  },
  signedLink: {
    type: 'apiKey',
    in: 'query',
    name: 'sig',
    description: 'A signed file link the hub handed out (`?exp=…&sig=…`), valid until `exp`.',
  },
  agentCookie: {
    type: 'apiKey',
    in: 'cookie',
    name: 'sb_agent',
    description:
      'The console sign-in cookie from `POST /api/agent/login`; requests that change something also send `X-Requested-With`.',
  },
};

/** JSON Schema of a zod schema as a request (`input`) or a response (`output`) shows it. */
function schemaOf(schema: z.ZodType, io: 'input' | 'output'): Json {
  const json = JSON.parse(
    JSON.stringify(
      z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }),
    ).replaceAll('"#/$defs/', '"#/components/schemas/'),
  ) as Json;
  delete json.$schema;
  return json;
}

/** Hoists `$defs` (named shapes) into `components.schemas`. */
function hoist(schema: Json, components: Record<string, Json>): Json {
  const defs = schema.$defs as Record<string, Json> | undefined;
  if (defs) {
    for (const [id, def] of Object.entries(defs)) components[id] = def;
    delete schema.$defs;
  }
  if (typeof schema.id === 'string') {
    // The schema itself is a named one: refer to it.
    const { id, ...rest } = schema;
    components[id] = rest;
    return { $ref: `#/components/schemas/${id}` };
  }
  return schema;
}

function parameters(op: Operation, components: Record<string, Json>): Json[] {
  const out: Json[] = [];
  for (const match of op.path.matchAll(/\{([^}]+)\}/g)) {
    const name = match[1]!;
    out.push({
      name,
      in: 'path',
      required: true,
      schema: hoist(schemaOf(pathParameterSchema(name), 'input'), components),
    });
  }
  if (op.query) {
    const query = schemaOf(op.query, 'input');
    const props = (query.properties ?? {}) as Record<string, Json>;
    const required = new Set((query.required as string[] | undefined) ?? []);
    for (const [name, schema] of Object.entries(props)) {
      const { description, ...rest } = schema;
      out.push({
        name,
        in: 'query',
        required: required.has(name) && !('default' in schema),
        schema: rest,
        ...(description ? { description } : {}),
      });
    }
  }
  return out;
}

function operation(op: Operation, components: Record<string, Json>): Json {
  const responses: Record<string, Json> = {};
  for (const [status, r] of Object.entries(op.responses)) {
    responses[status] = {
      description: r.description,
      ...(r.schema
        ? {
            content: {
              [r.contentType ?? 'application/json']: {
                schema: hoist(schemaOf(r.schema, 'output'), components),
              },
            },
          }
        : r.contentType
          ? { content: { [r.contentType]: { schema: { type: 'string' } } } }
          : {}),
    };
  }
  // Every route that takes ADMIN_TOKEN refuses an address that guessed it wrong too often (429);
  // every route answers 503 while the database or Redis is away, or the process stops.
  const errors = [...new Set([...op.errors, ...(op.security.includes('admin') ? [429] : []), 503])].sort(
    (a, b) => a - b,
  );
  for (const status of errors) responses[String(status)] = { $ref: `#/components/responses/E${status}` };
  responses.default = { $ref: '#/components/responses/Error' };
  const params = parameters(op, components);
  return {
    tags: [op.tag],
    summary: op.summary,
    operationId: operationId(op),
    ...(params.length ? { parameters: params } : {}),
    ...(op.upload
      ? {
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: {
                  type: 'object',
                  properties: {
                    [op.upload]: { type: 'string', contentMediaType: 'application/octet-stream' },
                  },
                  required: [op.upload],
                },
              },
            },
          },
        }
      : {}),
    ...(op.body
      ? {
          requestBody: {
            required: true,
            content: { 'application/json': { schema: hoist(schemaOf(op.body, 'input'), components) } },
          },
        }
      : {}),
    responses,
    security: op.security.map((s) => ({ [s]: [] })),
  };
}

/** `post /api/admin/agents/{id}/token` → `postApiAdminAgentsIdToken`. */
export function operationId(op: Pick<Operation, 'method' | 'path'>): string {
  const words = op.path.split(/[/{}_-]+/).filter(Boolean);
  return op.method + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}

/**
 * The event webhooks (README "Event webhooks") as OpenAPI 3.1 `webhooks`: one POST per event type
 * that the hub makes to a bot's endpoint, its body from `src/webhooks/events.ts`.
 */
function eventWebhooks(components: Record<string, Json>): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const type of WEBHOOK_EVENT_TYPES) {
    const name = `${type
      .split('.')
      .map((w) => w[0]!.toUpperCase() + w.slice(1))
      .join('')}Event`;
    out[type] = {
      post: {
        operationId: `webhook${name}`,
        summary: WEBHOOK_EVENTS[type].summary,
        tags: ['Event webhooks'],
        parameters: [
          {
            name: 'Switchboard-Signature',
            in: 'header',
            required: true,
            description:
              '`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` with the secret `secretEnv` names; refuse a `t` more than 5 minutes away.',
            schema: { type: 'string' },
          },
          {
            name: 'Switchboard-Event-Id',
            in: 'header',
            required: true,
            description: "The body's `id`.",
            schema: { type: 'string', format: 'uuid' },
          },
        ],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: hoist(schemaOf(webhookEventSchema(type).meta({ id: name }), 'output'), components),
            },
          },
        },
        responses: {
          '2XX': { description: 'Taken. Anything else, or no answer in time, is retried.' },
        },
      },
    };
  }
  return out;
}

/**
 * The OpenAPI 3.1 document of the hub's HTTP API, from the routes' own zod schemas
 * (`operations.ts`), and the event webhooks the hub sends (`webhooks`). Left out, and listed in
 * README: `/ws`, the pages, the platforms' webhooks, `/healthz`, `/readyz` and `/metrics`. The
 * channels' own API routes are in, tagged `Channels`.
 */
export function buildOpenApiDocument(options: { version: string; serverUrl?: string }): OpenApiDocument {
  const components: Record<string, Json> = {};
  const paths: Record<string, Record<string, Json>> = {};
  for (const op of OPERATIONS) {
    paths[op.path] ??= {};
    paths[op.path]![op.method] = operation(op, components);
  }
  const error = hoist(schemaOf(ErrorBody, 'output'), components);
  const responses: Record<string, Json> = {
    Error: { description: 'An error', content: { 'application/json': { schema: error } } },
  };
  for (const [status, description] of Object.entries(STATUS_TEXT))
    responses[`E${status}`] = {
      description,
      ...(RETRY_AFTER[Number(status)] ? { headers: RETRY_AFTER[Number(status)] } : {}),
      content: { 'application/json': { schema: error } },
    };
  return {
    openapi: '3.1.0',
    info: {
      title: 'Switchboard API',
      version: options.version,
      description:
        'The multi-channel conversation hub: the session API, the operator API, agents, outbound messages and the dashboard. Errors are always `{"error": {"code", "message"}}`.',
    },
    ...(options.serverUrl ? { servers: [{ url: options.serverUrl }] } : {}),
    tags: [
      { name: 'Session', description: 'A person talking to a bot over REST (bearer: the session token)' },
      { name: 'Operator', description: 'Sessions, statistics, erasure (bearer: ADMIN_TOKEN)' },
      { name: 'Identities', description: 'Users and their channel identities (bearer: ADMIN_TOKEN)' },
      { name: 'Agents', description: 'Agent accounts (ADMIN_TOKEN, or an admin agent)' },
      { name: 'Agent', description: 'The agent API the console uses (agent token or sign-in cookie)' },
      { name: 'Outbound', description: 'Messages and broadcasts the business starts' },
      {
        name: 'Dashboard',
        description: 'Analytics, transcripts, audit (ADMIN_TOKEN, supervisors, admin agents)',
      },
      {
        name: 'Event webhooks',
        description: "What the hub POSTs to a bot's webhook endpoints (bot.json `webhooks`), signed",
      },
      {
        name: 'Channels',
        description: "Routes of a channel's own, there when that channel is configured (web, WhatsApp Web)",
      },
    ],
    paths,
    webhooks: eventWebhooks(components),
    components: { schemas: components, responses, securitySchemes: SECURITY_SCHEMES },
  };
}
