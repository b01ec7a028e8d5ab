import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/llm/client.ts';
import { assembleContext, type ContextInput } from '../../src/llm/context.ts';
import { IMAGE_MAX_TOKENS, imageSize, imageTokens, imageTokensFor } from '../../src/llm/image-tokens.ts';
import { tokenCounter } from '../../src/llm/tokens.ts';
import { PNG_1X1 } from '../helpers/files.ts';
import { REPO_ROOT } from '../helpers/hub.ts';

const counter = tokenCounter('o200k_base');
const KETTLE = readFileSync(path.join(REPO_ROOT, 'test/fixtures/files/bots/gallery/media/kettle.png'));

/** A baseline JPEG header: SOI, an APP0 segment, then SOF0 with the size. */
function jpeg(width: number, height: number): Buffer {
  const app0 = Buffer.from([0xff, 0xe0, 0x00, 0x10, ...Buffer.from('JFIF\0'), 1, 1, 0, 0, 1, 0, 1, 0, 0]);
  const sof = Buffer.alloc(19);
  sof.writeUInt16BE(0xffc0, 0);
  sof.writeUInt16BE(17, 2);
  sof[4] = 8;
  sof.writeUInt16BE(height, 5);
  sof.writeUInt16BE(width, 7);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), app0, sof]);
}

describe('what a picture costs (OpenAI tile rule, detail high)', () => {
  it("matches OpenAI's worked examples", () => {
    // 1024×1024 → 768×768 → 4 tiles → 85 + 4×170.
    expect(imageTokensFor(1024, 1024)).toBe(765);
    // 2048×4096 → 1024×2048 → 768×1536 → 6 tiles.
    expect(imageTokensFor(2048, 4096)).toBe(1105);
    // Small pictures are not scaled up: one tile.
    expect(imageTokensFor(1, 1)).toBe(255);
    expect(imageTokensFor(0, 10)).toBe(IMAGE_MAX_TOKENS);
    expect(IMAGE_MAX_TOKENS).toBe(1445);
  });

  it('reads the size from PNG, JPEG, GIF and WebP headers; an unreadable picture costs the most', () => {
    expect(imageSize(PNG_1X1)).toEqual({ width: 1, height: 1 });
    expect(imageSize(jpeg(4000, 3000))).toEqual({ width: 4000, height: 3000 });
    // 4000×3000 → 2048×1536 → 1024×768 → 2×2 tiles.
    expect(imageTokens(jpeg(4000, 3000))).toBe(765);
    const gif = Buffer.from('GIF89a\x40\x01\xf0\x00\x00\x00', 'latin1');
    expect(imageSize(gif)).toEqual({ width: 320, height: 240 });
    const webp = Buffer.alloc(30);
    webp.write('RIFF', 0, 'latin1');
    webp.write('WEBPVP8X', 8, 'latin1');
    webp.writeUIntLE(1919, 24, 3);
    webp.writeUIntLE(1079, 27, 3);
    expect(imageSize(webp)).toEqual({ width: 1920, height: 1080 });
    expect(imageTokens(KETTLE)).toBe(imageTokensFor(imageSize(KETTLE)!.width, imageSize(KETTLE)!.height));
    expect(imageTokens(Buffer.from('not a picture'))).toBe(IMAGE_MAX_TOKENS);
  });
});

describe('pictures in the context budget', () => {
  const input = (overrides: Partial<ContextInput> = {}): ContextInput => ({
    system: 'You are Kettle Support. Be brief.',
    summary: null,
    knowledge: [],
    context: {},
    tools: [],
    history: Array.from({ length: 10 }, (_, i) => ({
      seq: i + 1,
      messages: [{ role: 'user', content: `message ${i + 1} about the kettle` } as ChatMessage],
    })),
    historyLimit: 50,
    message: 'What is wrong with my kettle?',
    pending: [],
    budget: 4000,
    knowledgeMaxChunks: 4,
    knowledgeMaxTokens: 1000,
    ...overrides,
  });

  it('counts the pictures in the request and leaves out history to make room for them', () => {
    const without = assembleContext(input(), counter);
    const withPictures = assembleContext(input({ images: [765, 765] }), counter);
    expect(withPictures.imagesKept).toBe(2);
    expect(withPictures.parts.filter((p) => p.part === 'images')).toEqual([
      { part: 'images', item: 1, kept: true, tokens: 765, reason: 'goes with the message' },
      { part: 'images', item: 2, kept: true, tokens: 765, reason: 'goes with the message' },
    ]);
    expect(withPictures.tokens).toBe(counter.request(withPictures.messages, withPictures.tools) + 1530);
    expect(withPictures.tokens).toBeLessThanOrEqual(4000);
    // With all history fitting either way, the pictures are what the request grows by.
    expect(withPictures.tokens - without.tokens).toBe(1530);

    // A budget that holds the pictures only without history: history goes, the pictures stay.
    const tight = without.tokens + 1530 - 20;
    const squeezed = assembleContext(input({ images: [765, 765], budget: tight }), counter);
    expect(squeezed.imagesKept).toBe(2);
    expect(squeezed.dropped.length).toBeGreaterThan(0);
    expect(squeezed.tokens).toBeLessThanOrEqual(tight);
  });

  it('pictures that do not fit after the message are left out, the first ones kept', () => {
    const bare = assembleContext(input({ history: [] }), counter);
    const a = assembleContext(
      input({ history: [], images: [765, 1445, 255], budget: bare.tokens + 1000 }),
      counter,
    );
    expect(a.imagesKept).toBe(1);
    expect(a.parts.filter((p) => p.part === 'images').map((p) => [p.item, p.kept, p.reason])).toEqual([
      [1, true, 'goes with the message'],
      [2, false, 'over budget'],
      // Only the first ones go: the third is not sent ahead of the second.
      [3, false, 'over budget'],
    ]);
    expect(a.tokens).toBe(bare.tokens + 765);
  });
});
