/**
 * What a picture costs in a vision model's context, by OpenAI's documented rule for images at
 * `detail: high` (also what `auto` picks for large images): the picture is scaled to fit in
 * 2048×2048, then (if larger) so that its shorter side is 768 px; it is cut into 512 px tiles,
 * and costs 85 tokens plus 170 per tile. A 1024×1024 photo: 768×768, 4 tiles, 765 tokens.
 * Other providers count differently; this is the estimate the budget uses for every model.
 */
export const IMAGE_BASE_TOKENS = 85;
export const IMAGE_TILE_TOKENS = 170;
const TILE = 512;
const MAX_SIDE = 2048;
const SHORT_SIDE = 768;
/** The most a picture costs (768×2048, 8 tiles): what one whose size cannot be read is counted as. */
export const IMAGE_MAX_TOKENS = IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * 8;

/** The tokens of a `width`×`height` picture, by the tile rule. */
export function imageTokensFor(width: number, height: number): number {
  if (!(width > 0 && height > 0)) return IMAGE_MAX_TOKENS;
  let w = width;
  let h = height;
  const fit = Math.min(1, MAX_SIDE / Math.max(w, h));
  w *= fit;
  h *= fit;
  if (Math.min(w, h) > SHORT_SIDE) {
    const shrink = SHORT_SIDE / Math.min(w, h);
    w *= shrink;
    h *= shrink;
  }
  const tiles = Math.ceil(Math.round(w) / TILE) * Math.ceil(Math.round(h) / TILE);
  return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tiles;
}

/** The tokens of a picture from its bytes (PNG, JPEG, GIF, WebP); the most there is when unreadable. */
export function imageTokens(bytes: Uint8Array): number {
  const size = imageSize(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return size ? imageTokensFor(size.width, size.height) : IMAGE_MAX_TOKENS;
}

/** Width and height from a picture's header, without decoding it. */
export function imageSize(b: Buffer): { width: number; height: number } | undefined {
  if (b.length >= 24 && b.readUInt32BE(0) === 0x89504e47 && b.toString('latin1', 12, 16) === 'IHDR')
    return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
  if (b.length >= 10 && b.toString('latin1', 0, 4) === 'GIF8')
    return { width: b.readUInt16LE(6), height: b.readUInt16LE(8) };
  if (b.length >= 30 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP')
    return webpSize(b);
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) return jpegSize(b);
  return undefined;
}

function webpSize(b: Buffer): { width: number; height: number } | undefined {
  const chunk = b.toString('latin1', 12, 16);
  if (chunk === 'VP8 ') return { width: b.readUInt16LE(26) & 0x3fff, height: b.readUInt16LE(28) & 0x3fff };
  if (chunk === 'VP8L')
    return {
      width: 1 + (((b[22]! & 0x3f) << 8) | b[21]!),
      height: 1 + (((b[24]! & 0x0f) << 10) | (b[23]! << 2) | ((b[22]! & 0xc0) >> 6)),
    };
  if (chunk === 'VP8X') return { width: 1 + b.readUIntLE(24, 3), height: 1 + b.readUIntLE(27, 3) };
  return undefined;
}

/** The frame header (SOFn) of a JPEG, found by walking its markers. */
function jpegSize(b: Buffer): { width: number; height: number } | undefined {
  let at = 2;
  while (at + 9 < b.length) {
    if (b[at] !== 0xff) return undefined;
    const marker = b[at + 1]!;
    if (marker === 0xff) {
      at++;
      continue;
    }
    const length = b.readUInt16BE(at + 2);
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) return { height: b.readUInt16BE(at + 5), width: b.readUInt16BE(at + 7) };
    at += 2 + length;
  }
  return undefined;
}
