import { type Card, CardSchema } from '../cards/card.ts';

/** An attachment as a client (the widget, an API client) sees it: a link instead of a store id. */
export interface ClientAttachment {
  type: string;
  name?: string;
  size?: number;
  /** A signed link to the bytes (files in the store), or the channel's own URL. */
  url?: string;
  fileId?: string;
}

/** A card as a client sees it: its image is a link. */
export type ClientCard = Omit<Card, 'image'> & { image?: { url: string; name?: string } };

type Link = (fileId: string) => string;

export function clientAttachments(list: unknown, link: Link): ClientAttachment[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((raw) => {
    if (typeof raw !== 'object' || raw === null) return [];
    const a = raw as Record<string, unknown>;
    if (typeof a.type !== 'string') return [];
    const fileId = typeof a.fileId === 'string' ? a.fileId : undefined;
    const url = fileId ? link(fileId) : typeof a.url === 'string' ? a.url : undefined;
    return [
      {
        type: a.type,
        ...(typeof a.name === 'string' ? { name: a.name } : {}),
        ...(typeof a.size === 'number' ? { size: a.size } : {}),
        ...(url ? { url } : {}),
        ...(fileId ? { fileId } : {}),
      },
    ];
  });
}

/** The cards a message payload holds, valid ones only. */
export function payloadCards(list: unknown): Card[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((c) => {
    const parsed = CardSchema.safeParse(c);
    return parsed.success ? [parsed.data] : [];
  });
}

export function clientCards(list: unknown, link: Link): ClientCard[] {
  return payloadCards(list).map(({ image, ...card }) => ({
    ...card,
    ...(image
      ? { image: 'fileId' in image ? { url: link(image.fileId), name: image.name } : { url: image.url } }
      : {}),
  }));
}
