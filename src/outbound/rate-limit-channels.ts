import { channels } from '../channels/registry.ts';

/**
 * What is wrong with BROADCAST_RATE_LIMITS's channel names, if anything: a name no channel has
 * (a typo such as `whatsap=5`) would cap nothing, and that channel's broadcasts would run at the
 * adapter's pace unnoticed. Any channel the hub knows may be named, enabled here or not.
 */
export function rateLimitChannelsProblem(limits: Readonly<Record<string, number>>): string | undefined {
  const unknown = Object.keys(limits).filter((name) => !channels.has(name));
  if (unknown.length === 0) return undefined;
  const named = unknown.map((name) => `"${name}"`).join(', ');
  return `${named} ${unknown.length === 1 ? 'is not a channel' : 'are not channels'}; the channels are ${channels.names().join(', ')}`;
}
