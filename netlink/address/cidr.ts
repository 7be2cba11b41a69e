/**
 * CIDR text of either family: parsing, network and last address, host
 * numbers, containment.
 *
 * @module
 */
import {
  familyBits,
  formatIpValue,
  type IpValue,
  parseIpValue,
} from "./_value.ts";
import { looksLikeIpv6, stripPrefix } from "./ip.ts";

/** A parsed CIDR. */
export interface Cidr {
  /** The address in canonical text (host bits kept). */
  readonly ip: string;
  /** The prefix length. */
  readonly prefix: number;
  /** 4 or 6. */
  readonly family: 4 | 6;
}

/**
 * Parses `address/prefix` text. A bare address gets the full prefix.
 *
 * @param text CIDR text such as `10.240.0.4/16` or `fd00::5/64`.
 * @returns The address (canonical, host bits kept), prefix and family.
 * @throws {SyntaxError} When the text is no CIDR.
 * @throws {RangeError} When the prefix is too long for the family.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCidr } from "@vnet/address";
 *
 * assert.deepEqual(parseCidr("10.240.0.4/16"), { ip: "10.240.0.4", prefix: 16, family: 4 });
 * ```
 */
export function parseCidr(text: string): Cidr {
  if (typeof text !== "string") {
    throw new TypeError("Cannot parse CIDR: not a string");
  }
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  let value: IpValue;
  try {
    value = parseIpValue(addr);
  } catch (e) {
    throw new SyntaxError(`Cannot parse CIDR "${text}"`, { cause: e });
  }
  const bits = familyBits(value.family);
  let prefix = bits;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p)) {
      throw new SyntaxError(`Cannot parse CIDR "${text}": bad prefix`);
    }
    prefix = Number(p);
    if (prefix > bits) {
      throw new RangeError(
        `Cannot parse CIDR "${text}": prefix exceeds ${bits}`,
      );
    }
  }
  return {
    ip: formatIpValue(value.value, value.family),
    prefix,
    family: value.family,
  };
}

/** The network base, the host mask and the address of a parsed CIDR. */
function masks(c: Cidr): { base: bigint; hostMask: bigint; value: bigint } {
  const total = BigInt(familyBits(c.family));
  const hostMask = (1n << (total - BigInt(c.prefix))) - 1n;
  const value = parseIpValue(c.ip).value;
  return { base: value & ~hostMask, hostMask, value };
}

/**
 * Returns the network address of a CIDR.
 *
 * @param cidr CIDR text.
 * @returns The network address text.
 * @throws {SyntaxError} When `cidr` is unparsable.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { network } from "@vnet/address";
 *
 * assert.equal(network("10.240.3.7/16"), "10.240.0.0");
 * ```
 */
export function network(cidr: string): string {
  const c = parseCidr(cidr);
  return formatIpValue(masks(c).base, c.family);
}

/**
 * Returns the network of a CIDR as CIDR text (`10.0.0.5/24` is
 * `10.0.0.0/24`; a bare address is its own network).
 *
 * @param cidr CIDR text.
 * @returns The network CIDR in canonical text.
 * @throws {SyntaxError} When `cidr` is unparsable.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { networkOf } from "@vnet/address";
 *
 * assert.equal(networkOf("10.0.0.5/24"), "10.0.0.0/24");
 * assert.equal(networkOf("fd00::5/64"), "fd00::/64");
 * ```
 */
export function networkOf(cidr: string): string {
  const c = parseCidr(cidr);
  return `${formatIpValue(masks(c).base, c.family)}/${c.prefix}`;
}

/**
 * Returns the last address of a CIDR (the IPv4 broadcast address).
 *
 * @param cidr CIDR text.
 * @returns The last address text.
 * @throws {SyntaxError} When `cidr` is unparsable.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { broadcast } from "@vnet/address";
 *
 * assert.equal(broadcast("10.240.0.0/16"), "10.240.255.255");
 * ```
 */
export function broadcast(cidr: string): string {
  const c = parseCidr(cidr);
  const m = masks(c);
  return formatIpValue(m.base | m.hostMask, c.family);
}

/**
 * Returns host number `n` of a CIDR (`host("10.0.0.0/24", 1)` is the first
 * host, the Azure gateway).
 *
 * @param cidr CIDR text.
 * @param n The host number, 0 ... size-1.
 * @returns The address text.
 * @throws {RangeError} When `n` is outside the network.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { host } from "@vnet/address";
 *
 * assert.equal(host("10.240.0.0/16", 1), "10.240.0.1");
 * ```
 */
export function host(cidr: string, n: number): string {
  const c = parseCidr(cidr);
  const m = masks(c);
  if (!Number.isInteger(n) || n < 0 || BigInt(n) > m.hostMask) {
    throw new RangeError(`Cannot take host ${n} of "${cidr}": out of range`);
  }
  return formatIpValue(m.base + BigInt(n), c.family);
}

/**
 * Tells whether `ip` lies inside `cidr` (false for another family).
 *
 * @param cidr CIDR text.
 * @param ip Address text.
 * @returns True when inside.
 * @throws {SyntaxError} When either is unparsable.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { contains } from "@vnet/address";
 *
 * assert.equal(contains("10.240.0.0/16", "10.240.9.9"), true);
 * assert.equal(contains("10.240.0.0/16", "10.241.0.1"), false);
 * ```
 */
export function contains(cidr: string, ip: string): boolean {
  const c = parseCidr(cidr);
  const a = parseIpValue(ip);
  if (a.family !== c.family) return false;
  const m = masks(c);
  return (a.value & ~m.hostMask) === m.base;
}

/**
 * Tells whether IPv4 `ip` (a `/prefix` on it is ignored) lies inside the
 * IPv4 `subnet`. Never throws: IPv6 or unparsable text is simply not inside.
 *
 * @param ip An address or a CIDR.
 * @param subnet CIDR text.
 * @returns True when inside.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { inSubnet } from "@vnet/address";
 *
 * assert.equal(inSubnet("10.0.0.5/24", "10.0.0.0/24"), true);
 * assert.equal(inSubnet("10.0.1.5", "10.0.0.0/24"), false);
 * assert.equal(inSubnet("fd00::5", "fd00::/64"), false);
 * assert.equal(inSubnet("junk", "10.0.0.0/24"), false);
 * ```
 */
export function inSubnet(ip: string, subnet: string): boolean {
  const addr = stripPrefix(ip);
  if (looksLikeIpv6(addr) || looksLikeIpv6(subnet)) return false;
  try {
    return contains(subnet, addr);
  } catch {
    return false;
  }
}
