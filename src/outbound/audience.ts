import { z } from 'zod';
import { CHANNEL_NAME_PATTERN } from '../channels/declaration.ts';
import { channels } from '../channels/registry.ts';

/**
 * Who a broadcast reaches, as a filter over the people who talked with the bot on its channel:
 * every given key must hold (AND).
 */
export const AudienceSchema = z
  .object({
    /** Their latest activity on the channel is after this time. */
    last_active_after: z.iso.datetime({ offset: true }).optional(),
    /** ... and before this one. */
    last_active_before: z.iso.datetime({ offset: true }).optional(),
    /** A session of theirs holds these variables with these values (compared as text). */
    variables: z
      .record(z.string().min(1).max(200), z.union([z.string().max(1000), z.number(), z.boolean()]))
      .optional(),
    /**
     * They have an identity of this kind (`email`, `phone`) or on this channel (`teams`, ...) linked
     * to them; `email` also counts an address a sign-in gave.
     */
    has_identity: z.string().regex(CHANNEL_NAME_PATTERN, 'an identity kind or a channel name').optional(),
  })
  .strict();
export type Audience = z.infer<typeof AudienceSchema>;

/** The channels whose identities `has_identity` names: those of that id kind, or that channel. */
export function identityChannels(kind: string): string[] {
  return channels
    .all()
    .filter((d) => d.nativeId.kind === kind || d.name === kind)
    .map((d) => d.name);
}

/**
 * The audience as a query yielding `(native_key, session_id)`, one row per person: for keyed
 * channels the person's identity (their threads are one person), for channels whose sessions a
 * client holds (web, api) each open session. `$1` is the bot and `$2` the channel; the filter's
 * own parameters are numbered from `firstParam`.
 */
export function audienceQuery(
  audience: Audience,
  explicitSessions: boolean,
  firstParam: number,
): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const p = (value: unknown) => {
    params.push(value);
    return `$${firstParam + params.length - 1}`;
  };
  const having: string[] = [];
  if (audience.last_active_after)
    having.push(`max(s.last_activity_at) > ${p(audience.last_active_after)}::timestamptz`);
  if (audience.last_active_before)
    having.push(`max(s.last_activity_at) < ${p(audience.last_active_before)}::timestamptz`);
  for (const [name, value] of Object.entries(audience.variables ?? {}))
    having.push(`bool_or(st.variables ->> ${p(name)}::text = ${p(String(value))}::text)`);
  if (audience.has_identity) {
    const kinds = p(identityChannels(audience.has_identity));
    const email =
      audience.has_identity === 'email'
        ? ' OR EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id AND u.email IS NOT NULL)'
        : '';
    having.push(
      `bool_or(EXISTS (SELECT 1 FROM user_identities ui WHERE ui.user_id = s.user_id AND ui.channel = ANY(${kinds}::text[]))${email})`,
    );
  }
  const person = explicitSessions ? 's.native_key' : `split_part(s.native_key, '#', 1)`;
  const sql = `SELECT ${person} AS native_key, ${explicitSessions ? 's.id' : 'NULL::uuid'} AS session_id
    FROM sessions s LEFT JOIN session_state st ON st.session_id = s.id
    WHERE s.bot = $1::text AND s.channel = $2::text${explicitSessions ? ' AND s.ended_at IS NULL' : ''}
    GROUP BY ${explicitSessions ? 's.native_key, s.id' : '1'}
    ${having.length ? `HAVING ${having.join(' AND ')}` : ''}`;
  return { sql, params };
}
