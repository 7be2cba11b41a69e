/**
 * Pure IP helpers: CIDR parsing, canonical address text, IPv4 integers, and
 * network arithmetic for IPv4 and IPv6.
 *
 * @module
 */

/** A parsed CIDR. */
export interface Cidr {
  /** The address in canonical text (host bits kept). */
  readonly ip: string;
  /** The prefix length. */
  readonly prefix: number;
  /** 4 or 6. */
  readonly family: 4 | 6;
}

const V4_PART = /^(?:0|[1-9][0-9]{0,2})$/;

function parseV4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0n;
  for (const p of parts) {
    if (!V4_PART.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = (n << 8n) | BigInt(v);
  }
  return n;
}

function parseV6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    const items = s.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i] ?? "";
      if (i === items.length - 1 && item.includes(".")) {
        const v4 = parseV4(item);
        if (v4 === undefined) return undefined;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(item)) return undefined;
        out.push(parseInt(item, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0] ?? "");
  const tail = halves.length === 2 ? groups(halves[1] ?? "") : [];
  if (head === undefined || tail === undefined) return undefined;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  let n = 0n;
  for (const g of [...head, ...new Array<number>(fill).fill(0), ...tail]) {
    n = (n << 16n) | BigInt(g);
  }
  return n;
}

function formatV6(n: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (≥ 2) of zero groups, first wins.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${
    hex.slice(best + bestLen).join(":")
  }`;
}

function formatV4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join(".");
}

/** An address as (bigint value, family). */
interface IpValue {
  value: bigint;
  family: 4 | 6;
}

function parseIpValue(text: string): IpValue {
  if (typeof text !== "string") {
    throw new TypeError(`Cannot parse IP address: not a string`);
  }
  const v4 = parseV4(text);
  if (v4 !== undefined) return { value: v4, family: 4 };
  const v6 = text.includes(":") ? parseV6(text) : undefined;
  if (v6 !== undefined) return { value: v6, family: 6 };
  throw new SyntaxError(`Cannot parse IP address "${text}"`);
}

function format(value: bigint, family: 4 | 6): string {
  return family === 4 ? formatV4(value) : formatV6(value);
}

function bits(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

/**
 * Returns the family of an IP address, or `undefined` when it is none.
 *
 * @param text The address text.
 * @returns 4, 6 or `undefined`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ipFamily } from "@vnet/netlink";
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
 * Returns the canonical text of an IP address (RFC 5952 for IPv6).
 *
 * @param text The address text.
 * @returns The canonical text.
 * @throws {SyntaxError} When `text` is no IP address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeIp } from "@vnet/netlink";
 *
 * assert.equal(normalizeIp("FD00:0:0:0::0001"), "fd00::1");
 * ```
 */
export function normalizeIp(text: string): string {
  const { value, family } = parseIpValue(text);
  return format(value, family);
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
 * import { parseCidr } from "@vnet/netlink";
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
  let prefix = bits(value.family);
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p)) {
      throw new SyntaxError(`Cannot parse CIDR "${text}": bad prefix`);
    }
    prefix = Number(p);
    if (prefix > bits(value.family)) {
      throw new RangeError(
        `Cannot parse CIDR "${text}": prefix exceeds ${bits(value.family)}`,
      );
    }
  }
  return {
    ip: format(value.value, value.family),
    prefix,
    family: value.family,
  };
}

/**
 * Converts an IPv4 address to an unsigned 32-bit integer.
 *
 * @param text Dotted-quad text.
 * @returns The integer.
 * @throws {SyntaxError} When `text` is no IPv4 address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ipToInt } from "@vnet/netlink";
 *
 * assert.equal(ipToInt("10.0.0.1"), 167772161);
 * ```
 */
export function ipToInt(text: string): number {
  const v = parseV4(text);
  if (v === undefined) {
    throw new SyntaxError(`Cannot parse IPv4 address "${text}"`);
  }
  return Number(v);
}

/**
 * Converts an unsigned 32-bit integer to dotted-quad text.
 *
 * @param n The integer (0 ... 2^32-1).
 * @returns The address text.
 * @throws {RangeError} When `n` is out of range or not an integer.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { intToIp } from "@vnet/netlink";
 *
 * assert.equal(intToIp(167772161), "10.0.0.1");
 * ```
 */
export function intToIp(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new RangeError(`Cannot convert ${n} to IPv4: out of range`);
  }
  return formatV4(BigInt(n));
}

function masks(c: Cidr): { base: bigint; hostMask: bigint; value: bigint } {
  const total = BigInt(bits(c.family));
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
 * import { network } from "@vnet/netlink";
 *
 * assert.equal(network("10.240.3.7/16"), "10.240.0.0");
 * ```
 */
export function network(cidr: string): string {
  const c = parseCidr(cidr);
  return format(masks(c).base, c.family);
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
 * import { broadcast } from "@vnet/netlink";
 *
 * assert.equal(broadcast("10.240.0.0/16"), "10.240.255.255");
 * ```
 */
export function broadcast(cidr: string): string {
  const c = parseCidr(cidr);
  const m = masks(c);
  return format(m.base | m.hostMask, c.family);
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
 * import { host } from "@vnet/netlink";
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
  return format(m.base + BigInt(n), c.family);
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
 * import { contains } from "@vnet/netlink";
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
