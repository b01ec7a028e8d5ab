import { defineBot } from '../../../src/engine/bot.ts';

/**
 * The demo bot: greets a new session (with the greeting from bot.json), then echoes each
 * message with the session's count, so that it is visible that the session is remembered.
 */
export default defineBot({
  onMessage(ctx) {
    ctx.set('last_message', ctx.text);
    ctx.talk(`You said: ${ctx.text} (message #${ctx.session.messageCount} in this session)`);
  },
});
