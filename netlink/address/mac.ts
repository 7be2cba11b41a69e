/**
 * MAC addresses: one parser, and one name per written form.
 *
 * - {@link kernelMac}: `00:0d:3a:f9:dc:a6`, lower case with colons, as the
 *   kernel, iproute2 and ebtables rules take it.
 * - {@link azureMac}: `000d3af9dca6`, 12 lower-case hex digits, as the IPAM
 *   state file and the Azure clients keep it (the wireserver and IMDS send
 *   `000D3AF9DCA6`).
 * - {@link armMac}: `00-0D-3A-F9-DC-A6`, as ARM writes it.
 *
 * {@link eui64LinkLocal} derives the IPv6 link-local address the kernel
 * gives a link of that MAC.
 *
 * Accepted input: `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` (one separator
 * throughout) and `aabbccddeeff`, any case.
 *
 * @module
 */
import { normalizeIp } from "./ip.ts";

const BARE = /^[0-9a-fA-F]{12}$/;
const SEPARATED =
  /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})(?:\2[0-9a-fA-F]{2}){4}$/;
const SHORT_OCTETS = /^[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){5}$/;

/** Options of {@link parseMac} and {@link kernelMac}. */
export interface MacOptions {
  /**
   * Also accept colon-separated octets of one hex digit, as `ether_ntoa()`
   * (and so `ebtables -L`) prints them: `2:0:0:0:0:5`.
   */
  readonly shortOctets?: boolean;
}

/**
 * Parses a MAC address into 6 bytes.
 *
 * @param text The MAC text.
 * @param options `shortOctets`: accept `2:0:0:0:0:5`.
 * @returns The 6 bytes.
 * @throws {TypeError} When `text` is not a string.
 * @throws {SyntaxError} When `text` is no MAC address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMac } from "@vnet/address";
 *
 * assert.deepEqual([...parseMac("00-0D-3A-F8-A1-B2")], [0, 13, 58, 248, 161, 178]);
 * assert.deepEqual([...parseMac("2:0:0:0:0:5", { shortOctets: true })], [2, 0, 0, 0, 0, 5]);
 * ```
 */
export function parseMac(text: string, options: MacOptions = {}): Uint8Array {
  if (typeof text !== "string") {
    throw new TypeError("Cannot parse MAC address: not a string");
  }
  let octets: string[];
  if (BARE.test(text)) octets = text.match(/../g) ?? [];
  else if (SEPARATED.test(text)) octets = text.split(/[:-]/);
  else if (options.shortOctets === true && SHORT_OCTETS.test(text)) {
    octets = text.split(":");
  } else throw new SyntaxError(`Cannot parse MAC address "${text}"`);
  return new Uint8Array(octets.map((o) => parseInt(o, 16)));
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
 * import { formatMac } from "@vnet/address";
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
 * Returns the kernel form of a MAC: lower case, two digits per octet,
 * colons (`ip link`, netlink, ebtables rules).
 *
 * @param text The MAC text in any accepted form.
 * @param options `shortOctets`: accept `2:0:0:0:0:5` as listed by ebtables.
 * @returns Text like `00:0d:3a:f8:a1:b2`.
 * @throws {SyntaxError} When `text` is no MAC address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { kernelMac } from "@vnet/address";
 *
 * assert.equal(kernelMac("000D3AF8A1B2"), "00:0d:3a:f8:a1:b2");
 * assert.equal(kernelMac("2:A:0:0:0:5", { shortOctets: true }), "02:0a:00:00:00:05");
 * ```
 */
export function kernelMac(text: string, options: MacOptions = {}): string {
  // Already the kernel form (most MACs the plugin reads): no round trip.
  if (typeof text === "string" && KERNEL_FORM.test(text)) return text;
  return formatMac(parseMac(text, options));
}

const KERNEL_FORM = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** Options of {@link azureMac}. */
export interface AzureMacOptions {
  /**
   * Pass `*` through: the MAC of a static IPAM interface bound to no NIC.
   */
  readonly wildcard?: boolean;
}

/**
 * Returns the Azure form of a MAC: 12 lower-case hex digits, no separators,
 * as the IPAM state file and `@vnet/azure`'s records hold it. Blanks around
 * the text are ignored.
 *
 * @param text The MAC text in any accepted form (wireserver and IMDS
 * `000D3AF9DCA6`, ARM `00-0D-3A-F9-DC-A6`, Linux `00:0d:3a:f9:dc:a6`).
 * @param options `wildcard`: return `*` as is.
 * @returns Text like `000d3af9dca6`.
 * @throws {SyntaxError} When `text` is no MAC address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { azureMac } from "@vnet/address";
 *
 * assert.equal(azureMac("00:0d:3a:ab:cd:ef"), "000d3aabcdef");
 * assert.equal(azureMac("000D3AABCDEF"), "000d3aabcdef");
 * assert.equal(azureMac("*", { wildcard: true }), "*");
 * ```
 */
export function azureMac(text: string, options: AzureMacOptions = {}): string {
  if (options.wildcard === true && text === "*") return "*";
  return kernelMac(text.trim()).replaceAll(":", "");
}

/**
 * Returns the ARM form of a MAC: upper-case pairs joined by dashes. Blanks
 * around the text are ignored.
 *
 * @param text The MAC text in any accepted form.
 * @returns Text like `00-0D-3A-F9-DC-A6`.
 * @throws {SyntaxError} When `text` is no MAC address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { armMac } from "@vnet/address";
 *
 * assert.equal(armMac("000d3af9dca6"), "00-0D-3A-F9-DC-A6");
 * ```
 */
export function armMac(text: string): string {
  return kernelMac(text.trim()).toUpperCase().replaceAll(":", "-");
}

/**
 * Returns the IPv6 link-local address of a MAC by modified EUI-64 (RFC 4291
 * appendix A): `fe80::` and the MAC with `ff:fe` in its middle and the
 * universal/local bit flipped, as the kernel derives a link's own
 * (`addr_gen_mode` 0).
 *
 * @param text The MAC text in any accepted form.
 * @returns The canonical address, without a prefix length.
 * @throws {SyntaxError} When `text` is no MAC address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { eui64LinkLocal } from "@vnet/address";
 *
 * assert.equal(eui64LinkLocal("8a:3a:7c:b5:6a:a1"), "fe80::883a:7cff:feb5:6aa1");
 * ```
 */
export function eui64LinkLocal(text: string): string {
  const b = parseMac(text);
  const word = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
  const [m0 = 0, m1 = 0, m2 = 0, m3 = 0, m4 = 0, m5 = 0] = b;
  return normalizeIp(
    `fe80::${word(m0 ^ 2, m1)}:${word(m2, 0xff)}:${word(0xfe, m3)}:${
      word(m4, m5)
    }`,
  );
}
