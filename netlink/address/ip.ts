/**
 * IP address text: family, canonical form (RFC 5952 for IPv6), IPv4 as an
 * unsigned 32-bit number, and the address part of a CIDR.
 *
 * @module
 */
import { formatIpValue, formatV4, parseIpValue, parseV4 } from "./_value.ts";

/**
 * Returns the family of an IP address, or `undefined` when it is none.
 *
 * @param text The address text.
 * @returns 4, 6 or `undefined`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ipFamily } from "@vnet/address";
 *
 * assert.equal(ipFamily("fd00::1"), 6);
 * assert.equal(ipFamily("10.0.0.300"), undefined);
 * ```
 */
export function ipFamily(text: string): 4 | 6 | undefined {
  try {
    return parseIpValue(text).family;
  } catch {
    return undefined;
  }
}

/**
 * Returns the canonical text of an IP address: RFC 5952 for IPv6, written
 * as `inet_ntop` writes it (the kernel side's text, from libnl's
 * `nl_addr2str`), so IPv4-mapped addresses end in a dotted quad
 * (`::ffff:10.0.0.1`). A dotted quad is read only as the final 32 bits.
 *
 * @param text The address text.
 * @returns The canonical text.
 * @throws {SyntaxError} When `text` is no IP address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeIp } from "@vnet/address";
 *
 * assert.equal(normalizeIp("FD00:0:0:0::0001"), "fd00::1");
 * assert.equal(normalizeIp("::ffff:a00:1"), "::ffff:10.0.0.1");
 * ```
 */
export function normalizeIp(text: string): string {
  const { value, family } = parseIpValue(text);
  return formatIpValue(value, family);
}

/**
 * Parses a dotted quad into an unsigned 32-bit number. Octets are decimal
 * without leading zeros (`01.2.3.4` is refused).
 *
 * @param text For example `10.240.0.5`.
 * @returns The number.
 * @throws {SyntaxError} When `text` is no IPv4 address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIpv4 } from "@vnet/address";
 *
 * assert.equal(parseIpv4("10.0.0.1"), 167772161);
 * ```
 */
export function parseIpv4(text: string): number {
  const v = typeof text === "string" ? parseV4(text) : undefined;
  if (v === undefined) {
    throw new SyntaxError(`Cannot parse IPv4 address "${text}"`);
  }
  return v;
}

/**
 * Formats an unsigned 32-bit number as a dotted quad.
 *
 * @param n The number (0 ... 2^32-1).
 * @returns The address text.
 * @throws {RangeError} When `n` is out of range or not an integer.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatIpv4 } from "@vnet/address";
 *
 * assert.equal(formatIpv4(167772161), "10.0.0.1");
 * ```
 */
export function formatIpv4(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new RangeError(`Cannot convert ${n} to IPv4: out of range`);
  }
  return formatV4(n);
}

/**
 * Tells whether `text` is a dotted-quad IPv4 address.
 *
 * @param text The text.
 * @returns True when {@link parseIpv4} accepts it.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isIpv4 } from "@vnet/address";
 *
 * assert.equal(isIpv4("10.0.0.1"), true);
 * assert.equal(isIpv4("10.0.0.1/24"), false);
 * ```
 */
export function isIpv4(text: string): boolean {
  return typeof text === "string" && parseV4(text) !== undefined;
}

/**
 * Tells whether address or CIDR text is written as IPv6: it holds a colon.
 * Nothing is validated; use {@link ipFamily} for that.
 *
 * @param text An address or a CIDR.
 * @returns True for IPv6 text.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { looksLikeIpv6 } from "@vnet/address";
 *
 * assert.equal(looksLikeIpv6("fd00::5/64"), true);
 * assert.equal(looksLikeIpv6("10.0.0.5/24"), false);
 * ```
 */
export function looksLikeIpv6(text: string): boolean {
  return text.includes(":");
}

/**
 * Strips an optional `/prefix` from an address (nothing is validated).
 *
 * @param text An address or a CIDR.
 * @returns The text before the first `/`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { stripPrefix } from "@vnet/address";
 *
 * assert.equal(stripPrefix("10.0.0.5/24"), "10.0.0.5");
 * assert.equal(stripPrefix("fd00::5"), "fd00::5");
 * ```
 */
export function stripPrefix(text: string): string {
  const slash = text.indexOf("/");
  return slash < 0 ? text : text.slice(0, slash);
}

/**
 * Orders two addresses by value: IPv4 before IPv6, then numerically (for
 * sorting, and for "the lowest free address" of either family).
 *
 * @param a An address.
 * @param b Another address.
 * @returns Negative, zero or positive, as `Array.prototype.sort` wants.
 * @throws {SyntaxError} When either is no address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareIps } from "@vnet/address";
 *
 * assert.deepEqual(
 *   ["fd00::10", "10.0.0.9", "fd00::9", "10.0.0.10"].sort(compareIps),
 *   ["10.0.0.9", "10.0.0.10", "fd00::9", "fd00::10"],
 * );
 * ```
 */
export function compareIps(a: string, b: string): number {
  const x = parseIpValue(a);
  const y = parseIpValue(b);
  if (x.family !== y.family) return x.family - y.family;
  return x.value < y.value ? -1 : x.value > y.value ? 1 : 0;
}
