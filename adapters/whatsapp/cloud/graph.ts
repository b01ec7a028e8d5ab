import { z } from 'zod';
import { inSpan, SpanKind, tracingEnabled } from '../../../src/telemetry/tracing.ts';

const GraphErrorBodySchema = z.object({
  error: z.looseObject({
    message: z.string().optional(),
    type: z.string().optional(),
    code: z.coerce.number().optional(),
    error_subcode: z.coerce.number().optional(),
    error_data: z.looseObject({ details: z.string().optional() }).optional(),
    fbtrace_id: z.string().optional(),
  }),
});

const SendResponseSchema = z.looseObject({
  messages: z.array(z.looseObject({ id: z.string() })).optional(),
  success: z.boolean().optional(),
});

/** A Graph API request that failed: the platform's error, or no answer at all. */
export class GraphRequestError extends Error {
  override name = 'GraphRequestError';
  constructor(
    message: string,
    readonly details: {
      /** HTTP status; undefined when no answer came (network error, timeout). */
      httpStatus?: number;
      /** The platform's error code (131047, 130429, ...). */
      code?: number;
      /** Error details from `error_data.details`. */
      description?: string;
      fbtraceId?: string;
      /** From a `Retry-After` header. */
      retryAfterMs?: number;
    },
  ) {
    super(message);
  }
}

export interface GraphClientOptions {
  baseUrl: string;
  version: string;
  accessToken: string;
  timeoutMs: number;
  fetch?: typeof fetch;
}

/** The one Graph API call the channel makes: `POST /{version}/{phone_number_id}/messages`. */
export class GraphClient {
  private readonly fetch: typeof fetch;

  constructor(private readonly o: GraphClientOptions) {
    this.fetch = o.fetch ?? fetch;
  }

  /**
   * Sends one message object; resolves with the wamid Meta assigned (absent for read receipts).
   * With tracing on, an HTTP client span covers it (under the delivery's send span).
   */
  postMessage(phoneNumberId: string, body: Record<string, unknown>): Promise<string | undefined> {
    if (!tracingEnabled()) return this.post(phoneNumberId, body);
    const template = '/{version}/{phone_number_id}/messages';
    return inSpan(
      `POST ${template}`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'http.request.method': 'POST',
          'url.template': template,
          'server.address': new URL(this.o.baseUrl).hostname,
          'whatsapp.message.type': String(body.type ?? body.status ?? 'unknown'),
        },
      },
      async (span) => {
        const wamid = await this.post(phoneNumberId, body);
        span?.setAttribute('http.response.status_code', 200);
        return wamid;
      },
    );
  }

  private async post(phoneNumberId: string, body: Record<string, unknown>): Promise<string | undefined> {
    const url = `${this.o.baseUrl}/${this.o.version}/${encodeURIComponent(phoneNumberId)}/messages`;
    let res: Response;
    try {
      res = await this.fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.o.accessToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ messaging_product: 'whatsapp', ...body }),
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
    } catch (err) {
      const reason =
        err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      throw new GraphRequestError(`the Graph API did not answer: ${reason}`, {});
    }
    const text = await res.text().catch(() => '');
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
      const parsed = GraphErrorBodySchema.safeParse(json);
      if (!parsed.success) {
        throw new GraphRequestError(`the Graph API answered ${res.status}`, {
          httpStatus: res.status,
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        });
      }
      const e = parsed.data.error;
      throw new GraphRequestError(e.message ?? `the Graph API answered ${res.status}`, {
        httpStatus: res.status,
        ...(e.code !== undefined ? { code: e.code } : {}),
        ...(e.error_data?.details ? { description: e.error_data.details } : {}),
        ...(e.fbtrace_id ? { fbtraceId: e.fbtrace_id } : {}),
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      });
    }
    const parsed = SendResponseSchema.safeParse(json);
    if (!parsed.success)
      throw new GraphRequestError('the Graph API answered 2xx with an unreadable body', {});
    return parsed.data.messages?.[0]?.id;
  }
}

const MediaInfoSchema = z.looseObject({
  url: z.string().url(),
  mime_type: z.string().optional(),
  file_size: z.coerce.number().optional(),
});

export interface GraphMedia {
  /** The media's bytes, streamed. */
  body: ReadableStream<Uint8Array>;
  type: string | undefined;
  size: number | undefined;
}

/**
 * The Cloud API's media endpoints: a media id is looked up (`GET /{version}/{media_id}`) for a
 * short-lived URL, which is then fetched with the same access token; a file is uploaded
 * (`POST /{version}/{phone_number_id}/media`, multipart) for an id to send it by.
 */
export class GraphMediaClient {
  private readonly fetch: typeof fetch;

  constructor(private readonly o: GraphClientOptions & { downloadTimeoutMs?: number }) {
    this.fetch = o.fetch ?? fetch;
  }

  private auth() {
    return { authorization: `Bearer ${this.o.accessToken}` };
  }

  async download(mediaId: string): Promise<GraphMedia> {
    const infoRes = await this.fetch(`${this.o.baseUrl}/${this.o.version}/${encodeURIComponent(mediaId)}`, {
      headers: this.auth(),
      signal: AbortSignal.timeout(this.o.timeoutMs),
    });
    if (!infoRes.ok) {
      // Unread, the body would hold its connection: the attachment retry asks again after a 5xx.
      await infoRes.body?.cancel();
      throw new GraphRequestError(`media ${mediaId}: the Graph API answered ${infoRes.status}`, {
        httpStatus: infoRes.status,
      });
    }
    const info = MediaInfoSchema.parse(await infoRes.json());
    const res = await this.fetch(info.url, {
      headers: this.auth(),
      signal: AbortSignal.timeout(this.o.downloadTimeoutMs ?? 60_000),
    });
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw new GraphRequestError(`media ${mediaId}: the download answered ${res.status}`, {
        httpStatus: res.status,
      });
    }
    return { body: res.body, type: info.mime_type, size: info.file_size };
  }

  /** Uploads a file for sending; resolves with its media id. */
  async upload(phoneNumberId: string, file: { bytes: Buffer; type: string; name: string }): Promise<string> {
    const form = new FormData();
    form.append('messaging_product', 'whatsapp');
    form.append('type', file.type);
    form.append('file', new Blob([new Uint8Array(file.bytes)], { type: file.type }), file.name);
    const res = await this.fetch(
      `${this.o.baseUrl}/${this.o.version}/${encodeURIComponent(phoneNumberId)}/media`,
      {
        method: 'POST',
        headers: this.auth(),
        body: form,
        signal: AbortSignal.timeout(this.o.downloadTimeoutMs ?? 60_000),
      },
    );
    const json = (await res.json().catch(() => undefined)) as { id?: string } | undefined;
    if (!res.ok || !json?.id)
      throw new GraphRequestError(`media upload: the Graph API answered ${res.status}`, {
        httpStatus: res.status,
      });
    return json.id;
  }
}

/** `Retry-After` in seconds or as an HTTP date. */
export function parseRetryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
