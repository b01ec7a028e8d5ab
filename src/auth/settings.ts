import { z } from 'zod';

/**
 * A bot's own sign-in settings (`"auth"` in `config/bots/<bot>/bot.json`), replacing the global
 * AUTH_JWT_* key for its sessions. Files are relative to the bot's folder. A shared secret is
 * never written in the file: `secretEnv` names the environment variable that holds it.
 */
export const BotAuthSettingsSchema = z
  .object({
    secretEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')
      .optional(),
    publicKeyFile: z.string().min(1).optional(),
    jwksFile: z.string().min(1).optional(),
    /** Default to AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE. */
    issuer: z.string().min(1).optional(),
    audience: z.string().min(1).optional(),
  })
  .strict()
  .refine((a) => [a.secretEnv, a.publicKeyFile, a.jwksFile].filter(Boolean).length === 1, {
    message: 'set exactly one of secretEnv, publicKeyFile, jwksFile',
  });
export type BotAuthSettings = z.infer<typeof BotAuthSettingsSchema>;
