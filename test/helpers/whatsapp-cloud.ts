import { createWhatsAppAdapter, loadWhatsAppConfig } from '../../adapters/whatsapp/index.ts';
import type { ChannelAdapter } from '../../src/ports.ts';

/**
 * The production WhatsApp Cloud adapter pointed at a local Graph API, answering on `numbers`
 * (`<phone_number_id>:<bot>,…`), with the given access token and app secret.
 */
export function whatsAppCloudAdapter(options: {
  graphUrl: string;
  numbers: string;
  accessToken: string;
  appSecret: string;
}): ChannelAdapter {
  const config = loadWhatsAppConfig(
    {
      WHATSAPP_ACCESS_TOKEN: options.accessToken,
      WHATSAPP_APP_SECRET: options.appSecret,
      WHATSAPP_VERIFY_TOKEN: 'verify',
      WHATSAPP_GRAPH_URL: options.graphUrl,
      WHATSAPP_NUMBERS: options.numbers,
    },
    '/tmp/unused',
  );
  if (!config) throw new Error('the WhatsApp test configuration was not accepted');
  return createWhatsAppAdapter(config);
}
