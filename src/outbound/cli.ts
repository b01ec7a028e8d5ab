import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { noMoreArguments, UsageError } from '../cli-usage.ts';
import { ConfigError } from '../config/env.ts';
import type { BroadcastCounts } from './broadcast-store.ts';

export const BROADCAST_USAGE = `  broadcast start --bot B --channel C (--to a,b | --to-file F | --audience JSON)
            (--text T | --template JSON) [--subject S] [--rate N] [--key K] [--watch] [--json]
                                               start a broadcast through the hub's API; --watch shows its progress
  broadcast status <id> [--watch] [--json]     a broadcast's progress (a bar; --watch until it completes)
  broadcast list [--json]                      the latest broadcasts
            (these talk to the hub at --url, else SWITCHBOARD_URL, else http://127.0.0.1:$PORT, with ADMIN_TOKEN;
            --watch asks every --interval MS, 1000)`;

/** How often `--watch` asks for a broadcast's progress, by default. */
const DEFAULT_INTERVAL_MS = 1_000;
/** The shortest `--interval`: each one is a request to the hub. */
const MIN_INTERVAL_MS = 100;

/** What `GET /api/admin/broadcasts/{id}` answers. */
export interface BroadcastProgressView extends BroadcastCounts {
  broadcast_id: string;
  status: 'running' | 'completed';
  rate_per_second: number;
}

const n = (x: number) => x.toLocaleString('en-US');

/**
 * One line: a bar of the recipients done (sent, delivered, failed or opted out), the count and
 * share, and each bucket: `[██████░░░░] 3,000/5,000  60%  sent 2,900 · delivered 80 · …`.
 */
export function progressLine(p: BroadcastProgressView, width = 30): string {
  const done = p.total - p.queued;
  const share = p.total === 0 ? 1 : done / p.total;
  const filled = Math.round(share * width);
  const bar = `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`;
  const buckets = [
    `sent ${n(p.sent)}`,
    `delivered ${n(p.delivered)}`,
    `failed ${n(p.failed)}`,
    `opted out ${n(p.opted_out)}`,
    `queued ${n(p.queued)}`,
  ].join(' · ');
  return `${bar} ${n(done)}/${n(p.total)} ${String(Math.floor(share * 100)).padStart(3)}%  ${buckets}`;
}

interface Io {
  env: Readonly<Record<string, string | undefined>>;
  out: { write(s: string): unknown; isTTY?: boolean };
  /** Waits between two looks at a running broadcast. */
  sleep?: (ms: number) => Promise<void>;
}

/** `switchboard broadcast start|status|list`: through the hub's HTTP API, as an operator. */
export async function runBroadcastCommand(args: string[], io: Io): Promise<number> {
  const [action = '', ...rest] = args;
  if (!['start', 'status', 'list'].includes(action))
    throw new UsageError(
      `${action ? `unknown action "broadcast ${action}"` : 'broadcast needs an action'}: use start, status or list`,
    );
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      url: { type: 'string' },
      bot: { type: 'string' },
      channel: { type: 'string' },
      to: { type: 'string' },
      'to-file': { type: 'string' },
      audience: { type: 'string' },
      text: { type: 'string' },
      template: { type: 'string' },
      subject: { type: 'string' },
      rate: { type: 'string' },
      key: { type: 'string' },
      watch: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      interval: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (action === 'status') {
    if (!positionals[0]) throw new UsageError('broadcast status takes the broadcast id');
    noMoreArguments('broadcast status', positionals.slice(1));
  } else {
    noMoreArguments(`broadcast ${action}`, positionals);
  }
  const intervalMs = values.interval === undefined ? DEFAULT_INTERVAL_MS : Number(values.interval);
  if (!Number.isInteger(intervalMs) || intervalMs < MIN_INTERVAL_MS)
    throw new UsageError(
      `--interval takes milliseconds, at least ${MIN_INTERVAL_MS}, not ${values.interval}`,
    );
  const token = io.env.ADMIN_TOKEN;
  if (!token)
    throw new ConfigError('set ADMIN_TOKEN: broadcasts are started and read through the operator API');
  const base = (values.url ?? io.env.SWITCHBOARD_URL ?? `http://127.0.0.1:${io.env.PORT ?? '8080'}`).replace(
    /\/+$/,
    '',
  );
  const call = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${base}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    const json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (!res.ok) {
      const error = json.error as { code?: string; message?: string } | undefined;
      throw new ConfigError(
        `${method} ${route}: ${res.status} ${error?.code ?? ''} ${error?.message ?? text}`.trim(),
      );
    }
    return json;
  };
  const sleep = io.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));

  const show = async (id: string, watch: boolean): Promise<number> => {
    const tty = io.out.isTTY === true;
    for (;;) {
      const p = (await call(
        'GET',
        `/api/admin/broadcasts/${encodeURIComponent(id)}`,
      )) as unknown as BroadcastProgressView;
      if (values.json) io.out.write(`${JSON.stringify(p)}\n`);
      else io.out.write(tty ? `\r${progressLine(p)}\x1b[K` : `${progressLine(p)}\n`);
      if (!watch || p.status === 'completed') {
        if (tty && !values.json) io.out.write('\n');
        return 0;
      }
      await sleep(intervalMs);
    }
  };

  if (action === 'start') {
    const to = values['to-file']
      ? (await readFile(values['to-file'], 'utf8')).split(/[\r\n,]+/).map((s) => s.trim())
      : values.to?.split(',').map((s) => s.trim());
    const body = {
      bot: values.bot,
      channel: values.channel,
      ...(to ? { to: to.filter(Boolean) } : {}),
      ...(values.audience ? { audience: parseJson(values.audience, '--audience') } : {}),
      ...(values.text !== undefined ? { text: values.text } : {}),
      ...(values.template ? { template: parseJson(values.template, '--template') } : {}),
      ...(values.subject !== undefined ? { subject: values.subject } : {}),
      ...(values.rate ? { rate_per_second: Number(values.rate) } : {}),
      ...(values.key ? { idempotency_key: values.key } : {}),
    };
    const answer = await call('POST', '/api/admin/broadcasts', body);
    if (values.json && !values.watch) io.out.write(`${JSON.stringify(answer)}\n`);
    else
      io.out.write(
        `broadcast ${answer.broadcast_id}: ${n(Number(answer.total))} recipients (${n(Number(answer.opted_out))} opted out) at ${answer.rate_per_second}/s\n`,
      );
    return values.watch ? show(String(answer.broadcast_id), true) : 0;
  }
  if (action === 'status') {
    return show(positionals[0]!, values.watch);
  }
  if (action === 'list') {
    const { broadcasts } = (await call('GET', '/api/admin/broadcasts')) as {
      broadcasts: { broadcast_id: string; bot: string; channel: string; total: number; created_at: string }[];
    };
    if (values.json) io.out.write(`${JSON.stringify(broadcasts)}\n`);
    else
      for (const b of broadcasts)
        io.out.write(`${b.broadcast_id}  ${b.created_at}  ${b.bot}/${b.channel}  ${n(b.total)} recipients\n`);
    return 0;
  }
  throw new UsageError(`unknown action "broadcast ${action}": use start, status or list`);
}

function parseJson(text: string, option: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ConfigError(`${option} takes JSON`);
  }
}
