import { z } from 'zod';

/** The body is not a Bot Framework activity (or lacks what a message or conversation update needs). */
export class NotAnActivityError extends Error {
  override name = 'NotAnActivityError';
}

const AccountSchema = z.looseObject({
  id: z.string().min(1),
  name: z.string().nullish(),
  /** The person's Entra ID (Azure AD) object id: the same for every bot and app. */
  aadObjectId: z.string().nullish(),
  role: z.string().nullish(),
});

const ActivityAttachmentSchema = z.looseObject({
  contentType: z.string().min(1),
  contentUrl: z.string().nullish(),
  name: z.string().nullish(),
  content: z.unknown().optional(),
});

const EntitySchema = z.looseObject({
  type: z.string(),
  text: z.string().nullish(),
  mentioned: z.looseObject({ id: z.string(), name: z.string().nullish() }).nullish(),
});

const IdNameSchema = z.looseObject({ id: z.string().nullish(), name: z.string().nullish() });

/** Only the type is needed to know an activity is one we ignore. */
const AnyActivitySchema = z.looseObject({ type: z.string().min(1) });

/**
 * What a message or a conversation update must carry for us to answer it later from any
 * process: who, where, through which service, and its id (the idempotency key).
 */
export const InboundActivitySchema = z.looseObject({
  type: z.string().min(1),
  id: z.string().min(1),
  channelId: z.string().min(1),
  serviceUrl: z.url({ protocol: /^https?$/ }),
  timestamp: z.string().nullish(),
  locale: z.string().nullish(),
  from: AccountSchema,
  recipient: AccountSchema,
  conversation: z.looseObject({
    id: z.string().min(1),
    conversationType: z.string().nullish(),
    isGroup: z.boolean().nullish(),
    tenantId: z.string().nullish(),
    name: z.string().nullish(),
  }),
  text: z.string().nullish(),
  textFormat: z.string().nullish(),
  /** An invoke's operation (`adaptiveCard/action`). */
  name: z.string().nullish(),
  value: z.unknown().optional(),
  attachments: z.array(ActivityAttachmentSchema).nullish(),
  entities: z.array(EntitySchema).nullish(),
  membersAdded: z.array(AccountSchema).nullish(),
  membersRemoved: z.array(AccountSchema).nullish(),
  replyToId: z.string().nullish(),
  channelData: z
    .looseObject({
      tenant: IdNameSchema.nullish(),
      team: IdNameSchema.nullish(),
      channel: IdNameSchema.nullish(),
      eventType: z.string().nullish(),
    })
    .nullish(),
});
export type InboundActivity = z.infer<typeof InboundActivitySchema>;

/** The invoke a card's `Action.Execute` (Universal Actions) sends when it is pressed. */
export const CARD_ACTION_INVOKE = 'adaptiveCard/action';

/** `value` of an `adaptiveCard/action` invoke: the action pressed, with its `verb` and `data`. */
const CardActionValueSchema = z.looseObject({
  action: z.looseObject({
    type: z.string(),
    id: z.string().nullish(),
    verb: z.string().nullish(),
    data: z.unknown().optional(),
  }),
  trigger: z.string().nullish(),
});

export type ParsedActivity =
  /** A person wrote to the bot. */
  | { kind: 'message'; activity: InboundActivity }
  /**
   * A person pressed a card's `Action.Execute` button: it is their message, whose text is the
   * button's value. The request is answered with an invoke response.
   */
  | { kind: 'action'; activity: InboundActivity; value: string; verb?: string }
  /** The bot was added to a conversation (a 1:1 chat, a group chat, a team): its session starts. */
  | { kind: 'start'; activity: InboundActivity }
  /** Everything else: acknowledged, logged, not queued. */
  | { kind: 'ignore'; activity: Record<string, unknown> & { type: string }; reason: string };

/**
 * Reads a request body as a Bot Framework activity and says what to do with it. Throws
 * NotAnActivityError, naming the bad fields, for a body that is no activity at all, or a
 * message or conversation update without what answering it needs. Pure: no I/O.
 */
export function parseActivity(body: unknown): ParsedActivity {
  const any = AnyActivitySchema.safeParse(body);
  if (!any.success) throw new NotAnActivityError(`not a Bot Framework activity: ${describe(any.error)}`);
  const { type } = any.data;
  if (type === 'invoke' && (body as { name?: unknown }).name === CARD_ACTION_INVOKE) return cardAction(body);
  if (type !== 'message' && type !== 'conversationUpdate') {
    return { kind: 'ignore', activity: any.data, reason: `activity type "${type}" is not handled` };
  }
  const parsed = InboundActivitySchema.safeParse(body);
  if (!parsed.success) throw new NotAnActivityError(`invalid ${type} activity: ${describe(parsed.error)}`);
  const activity = parsed.data;
  if (type === 'message') return { kind: 'message', activity };
  const botAdded = (activity.membersAdded ?? []).some((m) => m.id === activity.recipient.id);
  if (botAdded) return { kind: 'start', activity };
  const event = activity.channelData?.eventType;
  return {
    kind: 'ignore',
    activity,
    reason: `conversation update${event ? ` (${event})` : ''} that does not add the bot`,
  };
}

/**
 * A card's `Action.Execute` press. The value the bot reads: `data.value` (what this hub's own
 * cards carry, and the convention of a card that is pressed to answer), else the action's
 * `verb`. An action with neither says nothing a bot could read: acknowledged, not queued.
 */
function cardAction(body: unknown): ParsedActivity {
  const parsed = InboundActivitySchema.safeParse(body);
  if (!parsed.success) throw new NotAnActivityError(`invalid invoke activity: ${describe(parsed.error)}`);
  const activity = parsed.data;
  const value = CardActionValueSchema.safeParse(activity.value);
  if (!value.success) return { kind: 'ignore', activity, reason: `${CARD_ACTION_INVOKE} without an action` };
  const { data, verb } = value.data.action;
  const fromData =
    typeof data === 'string'
      ? data
      : typeof (data as { value?: unknown } | undefined)?.value === 'string'
        ? (data as { value: string }).value
        : undefined;
  const pressed = fromData?.trim() ? fromData : verb?.trim() ? verb : undefined;
  if (!pressed)
    return { kind: 'ignore', activity, reason: `${CARD_ACTION_INVOKE} with neither data.value nor a verb` };
  return { kind: 'action', activity, value: pressed, ...(verb ? { verb } : {}) };
}

function describe(error: z.ZodError): string {
  return error.issues
    .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
}
