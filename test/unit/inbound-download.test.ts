import { describe, expect, it } from 'vitest';
import { fromWeb } from '../../src/files/inbound.ts';

/** A download of `chunks` chunks that says whether it was cancelled (its connection let go). */
function download(chunks: number) {
  const seen = { cancelled: false, served: 0 };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (seen.served === chunks) return controller.close();
      seen.served++;
      controller.enqueue(new Uint8Array(1024));
    },
    cancel() {
      seen.cancelled = true;
    },
  });
  return { stream, seen };
}

describe("a platform's download, read as chunks", () => {
  it('is cancelled when the reader stops part-way (a file refused as too large)', async () => {
    const { stream, seen } = download(1_000);
    for await (const _ of fromWeb(stream)) break;
    expect(seen.cancelled).toBe(true);
    expect(seen.served).toBeLessThan(1_000);
  });

  it('is not cancelled when read to its end', async () => {
    const { stream, seen } = download(3);
    let bytes = 0;
    for await (const chunk of fromWeb(stream)) bytes += chunk.byteLength;
    expect(bytes).toBe(3 * 1024);
    expect(seen.cancelled).toBe(false);
  });
});
