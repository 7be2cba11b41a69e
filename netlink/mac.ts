/**
 * Pure MAC address helpers. Accepted input forms: `aa:bb:cc:dd:ee:ff`,
 * `aa-bb-cc-dd-ee-ff` and the wireserver's `AABBCCDDEEFF`, any case.
 *
 * @module
 */

const SEPARATED =
  /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})(?:\2[0-9a-fA-F]{2}){4}$/;
const BARE = /^[0-9a-fA-F]{12}$/;

/**
 * Parses a MAC address into 6 bytes.
 *
 * @param text The MAC text.
 * @returns The 6 bytes.
 * @throws {SyntaxError} When `text` is no MAC address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMac } from "@vnet/netlink";
 *
 * assert.deepEqual([...parseMac("00-0D-3A-F8-A1-B2")], [0, 13, 58, 248, 161, 178]);
 * ```
 */
export function parseMac(text: string): Uint8Array {
  if (typeof text !== "string") {
    throw new TypeError("Cannot parse MAC address: not a string");
  }
  let hex: string;
  if (BARE.test(text)) hex = text;
  else if (SEPARATED.test(text)) hex = text.replace(/[:-]/g, "");
  else throw new SyntaxError(`Cannot parse MAC address "${text}"`);
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) {
    out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}

/**
 * Formats 6 bytes as lower-case colon-separated text.
 *
 * @param bytes The 6 bytes.
 * @returns Text like `00:0d:3a:f8:a1:b2`.
 * @throws {RangeError} When `bytes` is not 6 long.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatMac } from "@vnet/netlink";
 *
 * assert.equal(formatMac(new Uint8Array([0, 13, 58, 248, 161, 178])), "00:0d:3a:f8:a1:b2");
 * ```
 */
export function formatMac(bytes: Uint8Array): string {
  if (bytes.length !== 6) {
    throw new RangeError(`Cannot format MAC address: ${bytes.length} bytes`);
  }
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * Returns the canonical (lower-case, colon-separated) form of a MAC.
 *
 * @param text The MAC text in any accepted form.
 * @returns The canonical text.
 * @throws {SyntaxError} When `text` is no MAC address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeMac } from "@vnet/netlink";
 *
 * assert.equal(normalizeMac("000D3AF8A1B2"), "00:0d:3a:f8:a1:b2");
 * ```
 */
export function normalizeMac(text: string): string {
  return formatMac(parseMac(text));
}
