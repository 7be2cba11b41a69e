/**
 * Byte helpers shared inside `@vnet/cni` (`@vnet/forward` keeps its own
 * copy: it imports nothing).
 *
 * @module
 */

/**
 * The chunks, one after the other, in one array (the chunk itself when
 * there is only one).
 *
 * @param chunks The chunks.
 * @returns Their bytes.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { concatBytes } from "./bytes.ts";
 * const out = concatBytes([new Uint8Array([1]), new Uint8Array([2, 3])]);
 * assert.deepEqual([...out], [1, 2, 3]);
 * ```
 */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1 && chunks[0] !== undefined) return chunks[0];
  let size = 0;
  for (const c of chunks) size += c.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
