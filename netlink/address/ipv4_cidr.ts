/**
 * IPv4 subnets as numbers, for allocators: the network and its prefix
 * length, the broadcast address, Azure's gateway, containment.
 *
 * @module
 */
import { formatIpv4, parseIpv4 } from "./ip.ts";

/** A parsed IPv4 CIDR. */
export interface Ipv4Cidr {
  /** The network address as an unsigned 32-bit number. */
  readonly network: number;
  /** The prefix length, 0 to 32. */
  readonly prefixLength: number;
}

/** The netmask of a prefix length as an unsigned number. */
function maskOf(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

/**
 * Parses an IPv4 CIDR; host bits are cleared (`10.240.0.4/16` is
 * `10.240.0.0/16`). The prefix is required.
 *
 * @param text For example `10.240.0.0/16`.
 * @returns The network and prefix length.
 * @throws {SyntaxError} When `text` is no IPv4 CIDR (a prefix over 32
 * included).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatIpv4, parseIpv4Cidr } from "@vnet/address";
 *
 * const c = parseIpv4Cidr("10.240.7.9/16");
 * assert.equal(formatIpv4(c.network), "10.240.0.0");
 * assert.equal(c.prefixLength, 16);
 * ```
 */
export function parseIpv4Cidr(text: string): Ipv4Cidr {
  const slash = text.indexOf("/");
  const lenText = slash < 0 ? "" : text.slice(slash + 1);
  if (slash < 0 || !/^\d{1,2}$/.test(lenText) || Number(lenText) > 32) {
    throw new SyntaxError(`Cannot parse IPv4 CIDR "${text}"`);
  }
  const prefixLength = Number(lenText);
  const addr = parseIpv4(text.slice(0, slash));
  return { network: (addr & maskOf(prefixLength)) >>> 0, prefixLength };
}

/**
 * The canonical text of an IPv4 CIDR.
 *
 * @param cidr The parsed CIDR.
 * @returns For example `10.240.0.0/16`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatIpv4Cidr, parseIpv4Cidr } from "@vnet/address";
 *
 * assert.equal(formatIpv4Cidr(parseIpv4Cidr("10.240.7.9/16")), "10.240.0.0/16");
 * ```
 */
export function formatIpv4Cidr(cidr: Ipv4Cidr): string {
  return `${formatIpv4(cidr.network)}/${cidr.prefixLength}`;
}

/**
 * The broadcast (last) address of an IPv4 CIDR.
 *
 * @param cidr The parsed CIDR.
 * @returns The address as a number.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatIpv4, ipv4Broadcast, parseIpv4Cidr } from "@vnet/address";
 *
 * assert.equal(formatIpv4(ipv4Broadcast(parseIpv4Cidr("10.240.0.0/16"))), "10.240.255.255");
 * ```
 */
export function ipv4Broadcast(cidr: Ipv4Cidr): number {
  return (cidr.network | (~maskOf(cidr.prefixLength) >>> 0)) >>> 0;
}

/**
 * The gateway of an IPv4 subnet as Azure defines it: host number 1 (the
 * network itself for a /31 or /32).
 *
 * @param cidr The parsed CIDR.
 * @returns The address as a number.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatIpv4, ipv4Gateway, parseIpv4Cidr } from "@vnet/address";
 *
 * assert.equal(formatIpv4(ipv4Gateway(parseIpv4Cidr("10.240.0.0/16"))), "10.240.0.1");
 * ```
 */
export function ipv4Gateway(cidr: Ipv4Cidr): number {
  return cidr.prefixLength >= 31 ? cidr.network : cidr.network + 1;
}

/**
 * Tells whether an IPv4 address lies in an IPv4 CIDR.
 *
 * @param cidr The parsed CIDR.
 * @param addr The address as a number.
 * @returns True when inside.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ipv4CidrContains, parseIpv4, parseIpv4Cidr } from "@vnet/address";
 *
 * const c = parseIpv4Cidr("10.240.0.0/16");
 * assert.equal(ipv4CidrContains(c, parseIpv4("10.240.9.9")), true);
 * assert.equal(ipv4CidrContains(c, parseIpv4("10.241.0.1")), false);
 * ```
 */
export function ipv4CidrContains(cidr: Ipv4Cidr, addr: number): boolean {
  return ((addr & maskOf(cidr.prefixLength)) >>> 0) === cidr.network;
}
