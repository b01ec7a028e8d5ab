import { type Activity, type CloudAdapter, TurnContext } from 'botbuilder';
import type { ConnectorClient } from 'botframework-connector';
import { type OutboundBatch, SendError, type SendOutcome } from '../../../src/delivery/sender.ts';
import type { Logger } from '../../../src/logger.ts';
import type { SessionRecord } from '../../../src/store/records.ts';
import { replyToIdFor } from '../ids.ts';
import { isLoopbackUrl } from '../loopback.ts';
import { asConversationReference, ReferenceSchema, type StoredReference } from '../reference.ts';
import { toSendError } from './errors.ts';
import { planReply } from './plan.ts';

/** Replies half-sent (some activities out) that this process remembers, so a retry sends only the rest. */
const MAX_PARTIAL_REPLIES = 10_000;
/** How long a send waits for this session's "typing…" to go out first, so it never lands after the reply. */
const TYPING_HEAD_START_MS = 2_000;
/** core-rest-pipeline's retry policy, which the ConnectorClient's pipeline carries by default. */
const SDK_RETRY_POLICY = 'defaultRetryPolicy';

export interface TeamsSenderOptions {
  adapter: CloudAdapter;
  /** The bot's app id ('' without authentication): the identity replies are sent as. */
  appId: string;
  logger: Logger;
  maxTextChars: number;
  requestTimeoutMs: number;
  /** Signed links to stored files (images, downloads, card images), absolute on PUBLIC_URL. */
  link?: (fileId: string) => string;
}

/**
 * Sends replies from whichever process drains the session's outbox: botbuilder's
 * `continueConversationAsync` with the conversation reference stored with the session (which
 * signs the requests when the bot has an app id), then the Bot Connector's
 * `POST /v3/conversations/{id}/activities/{replyToId}` for each activity of each reply.
 */
export class TeamsSender {
  /** `${sessionId}:${seq}` → activities of that reply already sent. */
  private readonly partial = new Map<string, number>();
  private readonly typingInFlight = new Map<string, Promise<unknown>>();
  private warnedAboutRetries = false;

  constructor(private readonly o: TeamsSenderOptions) {}

  async send(batch: OutboundBatch): Promise<SendOutcome[]> {
    const { session } = batch;
    const reference = readReference(session);
    await this.afterTyping(session.id);
    const conversationId = reference.conversation.id;
    const replyToId = replyToIdFor(batch.inReplyTo, conversationId);
    const outcomes: SendOutcome[] = [];
    try {
      await this.withConnector(reference, async (connector) => {
        for (const reply of batch.replies) {
          const key = `${session.id}:${reply.seq}`;
          const plan = planReply(reply, {
            conversationType: reference.conversation.conversationType,
            maxTextChars: this.o.maxTextChars,
            ...(this.o.link ? { link: this.o.link } : {}),
          });
          let lastId: string | undefined;
          for (let i = this.partial.get(key) ?? 0; i < plan.length; i++) {
            const activity = addressed(plan[i]!, reference, replyToId);
            const options = { timeout: this.o.requestTimeoutMs };
            const response = replyToId
              ? await connector.conversations.replyToActivity(conversationId, replyToId, activity, options)
              : await connector.conversations.sendToConversation(conversationId, activity, options);
            lastId = response.id ?? lastId;
            if (i + 1 < plan.length) this.remember(key, i + 1);
          }
          this.partial.delete(key);
          outcomes.push({ seq: reply.seq, status: 'sent', ...(lastId ? { channelMessageId: lastId } : {}) });
          this.o.logger.debug({
            event: 'teams.sent',
            sessionId: session.id,
            seq: reply.seq,
            conversationId,
            replyToId,
            activities: plan.length,
          });
        }
      });
    } catch (err) {
      throw err instanceof SendError ? err : toSendError(err, outcomes);
    }
    return outcomes;
  }

  /** Shows "typing…" in the conversation while the engine works. */
  async typing(session: SessionRecord): Promise<void> {
    const parsed = ReferenceSchema.safeParse(session.replyTo);
    if (!parsed.success) return;
    const reference = parsed.data;
    const sending = this.withConnector(reference, (connector) =>
      connector.conversations.sendToConversation(
        reference.conversation.id,
        addressed({ type: 'typing' }, reference, undefined),
        { timeout: this.o.requestTimeoutMs },
      ),
    );
    this.typingInFlight.set(session.id, sending);
    try {
      await sending;
      this.o.logger.debug({ event: 'teams.typing', sessionId: session.id });
    } finally {
      if (this.typingInFlight.get(session.id) === sending) this.typingInFlight.delete(session.id);
    }
  }

  private async afterTyping(sessionId: string): Promise<void> {
    const typing = this.typingInFlight.get(sessionId);
    if (!typing) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      typing.catch(() => undefined),
      new Promise((resolve) => {
        timer = setTimeout(resolve, TYPING_HEAD_START_MS);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Runs `use` with a ConnectorClient for the reference's service, as the bot. */
  private async withConnector(
    reference: StoredReference,
    use: (connector: ConnectorClient) => Promise<unknown>,
  ): Promise<void> {
    const { adapter, appId } = this.o;
    // Without an app id nothing was authenticated: never post where an activity said to, off this machine.
    if (!appId && !isLoopbackUrl(reference.serviceUrl))
      throw new SendError(
        `without TEAMS_APP_ID replies go only to a loopback serviceUrl, not ${reference.serviceUrl}`,
        { retryable: false },
      );
    await adapter.continueConversationAsync(appId, asConversationReference(reference), async (context) => {
      const connector = context.turnState.get<ConnectorClient>(adapter.ConnectorClientKey);
      this.withoutSdkRetries(connector);
      await use(connector);
    });
  }

  /**
   * The delivery retries a failed send with persisted attempts, backoff and Retry-After, and
   * marks the reply's status; the ConnectorClient's own retry policy would retry underneath
   * it (three more times per attempt, holding the session's lane while it waits). It is taken
   * out of this client's pipeline. (The pipeline is not public API: should botbuilder move it,
   * sends still work, with both retries, and this says so once.)
   */
  private withoutSdkRetries(connector: ConnectorClient): void {
    type WithPipeline = { client?: { pipeline?: { removePolicy(policy: { name: string }): unknown } } };
    const pipeline = (connector as unknown as WithPipeline).client?.pipeline;
    if (pipeline) {
      pipeline.removePolicy({ name: SDK_RETRY_POLICY });
    } else if (!this.warnedAboutRetries) {
      this.warnedAboutRetries = true;
      this.o.logger.warn({ event: 'teams.sdk_retries_kept', reason: 'ConnectorClient has no pipeline' });
    }
  }

  private remember(key: string, sentActivities: number): void {
    if (!this.partial.has(key) && this.partial.size >= MAX_PARTIAL_REPLIES) {
      const oldest = this.partial.keys().next().value;
      if (oldest !== undefined) this.partial.delete(oldest);
    }
    this.partial.set(key, sentActivities);
  }
}

function readReference(session: SessionRecord): StoredReference {
  const parsed = ReferenceSchema.safeParse(session.replyTo);
  if (!parsed.success) {
    throw new SendError(`session ${session.id} has no Teams conversation reference to answer`, {
      retryable: false,
    });
  }
  return parsed.data;
}

/** The activity from the bot to the conversation, threaded under `replyToId` when there is one. */
function addressed(
  activity: Partial<Activity>,
  reference: StoredReference,
  replyToId: string | undefined,
): Partial<Activity> {
  const out = TurnContext.applyConversationReference({ ...activity }, asConversationReference(reference));
  if (replyToId) out.replyToId = replyToId;
  else delete out.replyToId;
  return out;
}
