/** Files with real first bytes, for the file store's sniffer. */

/** A PDF of `size` bytes: a real header, then filler (the sniffer reads the header). */
export function pdfBytes(size: number, seed = 'x'): Buffer {
  const head = Buffer.from(`%PDF-1.4\n%${seed}\n`);
  const body = Buffer.alloc(size - head.length, 0x20);
  return Buffer.concat([head, body]);
}

/** The smallest PNG there is (1×1). */
export const PNG_1X1 = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

/** A Windows program's first bytes (MZ header), whatever the file is called. */
export const EXE_BYTES = Buffer.concat([
  Buffer.from('4d5a90000300000004000000ffff0000', 'hex'),
  Buffer.alloc(512),
]);
