import { z } from 'zod';
import { numberedLine } from './numbered.ts';

/**
 * A channel-neutral card: a title, some text, an optional image and buttons. A button either
 * sends its `value` back as the person's message, or opens its `url`. Several cards in one reply
 * are a carousel. Each channel renders them its own way (Adaptive Card, WhatsApp interactive
 * message, HTML mail, Block Kit, inline keyboard, the widget's card) and falls back to numbered
 * text where it cannot.
 */
export const CardButtonSchema = z.union([
  z.object({ title: z.string().min(1).max(80), value: z.string().min(1).max(1000) }).strict(),
  z
    .object({
      title: z.string().min(1).max(80),
      url: z
        .string()
        .max(2000)
        .regex(/^https?:\/\//i, 'a link button opens an http(s) URL'),
    })
    .strict(),
]);
export type CardButton = z.infer<typeof CardButtonSchema>;

/** A card's picture: a file in the store (a bot's media), or an https URL shown as it is. */
export const CardImageSchema = z.union([
  z
    .object({ fileId: z.uuid(), name: z.string().max(200).optional(), type: z.string().max(100).optional() })
    .strict(),
  z
    .object({
      url: z
        .string()
        .max(2000)
        .regex(/^https:\/\//i, 'an image URL is https'),
    })
    .strict(),
]);
export type CardImage = z.infer<typeof CardImageSchema>;

export const CardSchema = z
  .object({
    title: z.string().max(200).optional(),
    text: z.string().max(4000).optional(),
    image: CardImageSchema.optional(),
    buttons: z.array(CardButtonSchema).max(10).default([]),
  })
  .strict()
  .refine((c) => c.title || c.text || c.image, { message: 'a card has a title, a text or an image' });
export type Card = z.infer<typeof CardSchema>;
export type CardInput = z.input<typeof CardSchema>;

export const isLinkButton = (b: CardButton): b is Extract<CardButton, { url: string }> => 'url' in b;
export const isValueButton = (b: CardButton): b is Extract<CardButton, { value: string }> => 'value' in b;

/**
 * Cards as plain text, for channels (or moments) that cannot show them: each card's title and
 * text, and its buttons numbered across the whole reply, so that answering "2" works wherever the
 * choices are also offered as suggestions; links are written out.
 */
export function cardsAsText(cards: readonly Card[]): string {
  let n = 0;
  return cards
    .map((card) => {
      const lines: string[] = [];
      if (card.title) lines.push(card.title);
      if (card.text) lines.push(card.text);
      for (const b of card.buttons)
        lines.push(isLinkButton(b) ? `${b.title}: ${b.url}` : numberedLine(++n, b.title));
      return lines.join('\n');
    })
    .join('\n\n');
}

/** The value buttons of the cards, in order: what a numbered answer or a press picks from. */
export function cardChoices(cards: readonly Card[]): { text: string; value: string }[] {
  return cards.flatMap((c) =>
    c.buttons.filter(isValueButton).map((b) => ({ text: b.title, value: b.value })),
  );
}
