import type { CloudAdapter } from 'botbuilder';
import type { ConnectorClient } from 'botframework-connector';
import { asConversationReference, type StoredReference } from './reference.ts';

/** What a ConnectorClient's credentials (botframework-connector's AppCredentials) offer. */
interface TokenCredentials {
  getToken?(forceRefresh?: boolean): Promise<string>;
}

/**
 * The bot's Bot Connector token for a conversation, from the same credentials that sign its
 * replies (botbuilder's ConnectorClient for the reference, as the sender uses: MSAL with the app
 * secret, a certificate or a managed identity, cached and renewed by botbuilder).
 */
export async function botConnectorToken(
  adapter: CloudAdapter,
  appId: string,
  reference: StoredReference,
): Promise<string | undefined> {
  let token: string | undefined;
  await adapter.continueConversationAsync(appId, asConversationReference(reference), async (context) => {
    const connector = context.turnState.get<ConnectorClient>(adapter.ConnectorClientKey);
    const credentials = (connector as unknown as { credentials?: TokenCredentials }).credentials;
    token = (await credentials?.getToken?.()) || undefined;
  });
  return token;
}
