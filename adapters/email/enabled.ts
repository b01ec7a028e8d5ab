/**
 * The email channel is on when its IMAP host is set. A module of its own: the channel's
 * declaration (channel.ts) reads it, and must stay free of the mail libraries config.ts uses.
 */
export function emailEnabled(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.EMAIL_IMAP_HOST?.trim());
}
