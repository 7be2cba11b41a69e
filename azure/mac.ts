/**
 * MAC address normalisation: wireserver/IMDS `000D3AF9DCA6`, ARM
 * `00-0D-3A-F9-DC-A6` and Linux `00:0d:3a:f9:dc:a6` all become
 * `000d3af9dca6`.
 *
 * @module
 */

const HEX12 = /^[0-9a-f]{12}$/;

/**
 * Normalises a MAC address to 12 lower-case hex digits without separators.
 *
 * Accepts the three forms Azure and Linux use (no separators, dashes,
 * colons), in any case.
 *
 * @param mac The MAC address text.
 * @returns 12 lower-case hex digits.
 * @throws {SyntaxError} When the text is not a 48-bit MAC address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeMac } from "./mac.ts";
 *
 * assert.equal(normalizeMac("000D3AF9DCA6"), "000d3af9dca6");
 * assert.equal(normalizeMac("00-0D-3A-F9-DC-A6"), "000d3af9dca6");
 * assert.equal(normalizeMac("00:0d:3a:f9:dc:a6"), "000d3af9dca6");
 * ```
 */
export function normalizeMac(mac: string): string {
  const trimmed = mac.trim();
  const sep = /^[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$/
    .test(trimmed);
  const flat = (sep ? trimmed.replace(/[:-]/g, "") : trimmed).toLowerCase();
  if (!HEX12.test(flat)) {
    throw new SyntaxError(`Cannot parse MAC address "${mac}"`);
  }
  return flat;
}

/**
 * Formats a MAC address the way ARM writes it: `00-0D-3A-F9-DC-A6`.
 *
 * @param mac Any form {@linkcode normalizeMac} accepts.
 * @returns Upper-case pairs joined by dashes.
 * @throws {SyntaxError} When the text is not a MAC address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatArmMac } from "./mac.ts";
 *
 * assert.equal(formatArmMac("000d3af9dca6"), "00-0D-3A-F9-DC-A6");
 * ```
 */
export function formatArmMac(mac: string): string {
  const flat = normalizeMac(mac).toUpperCase();
  return flat.match(/../g)?.join("-") ?? flat;
}
