/**
 * Small, pure IPv4 and MAC helpers for the IPAM engine (ipam may not import
 * netlink).
 *
 * @module
 */

/** A parsed IPv4 CIDR. */
export interface Ipv4Cidr {
  /** The network address as an unsigned 32-bit number. */
  readonly network: number;
  /** The prefix length, 0 to 32. */
  readonly prefixLength: number;
}

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * Parses a dotted quad into an unsigned 32-bit number.
 *
 * @param text For example `10.240.0.5`.
 * @returns The number.
 * @throws {SyntaxError} When `text` is no IPv4 address.
 */
export function parseIpv4(text: string): number {
  const m = IPV4_RE.exec(text);
  if (m === null) throw new SyntaxError(`Cannot parse IPv4 address "${text}"`);
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i] ?? "";
    const octet = Number(part);
    if (octet > 255 || (part.length > 1 && part.startsWith("0"))) {
      throw new SyntaxError(`Cannot parse IPv4 address "${text}"`);
    }
    n = n * 256 + octet;
  }
  return n;
}

/** True when `text` is a dotted-quad IPv4 address. */
export function isIpv4(text: string): boolean {
  try {
    parseIpv4(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Formats an unsigned 32-bit number as a dotted quad.
 *
 * @param n The address.
 * @returns For example `10.240.0.5`.
 */
export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** The netmask of a prefix length as an unsigned number. */
function maskOf(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

/**
 * Parses a CIDR; host bits are cleared (`10.240.0.4/16` is `10.240.0.0/16`).
 *
 * @param text For example `10.240.0.0/16`.
 * @returns The network and prefix length.
 * @throws {SyntaxError} When `text` is no IPv4 CIDR.
 */
export function parseCidr(text: string): Ipv4Cidr {
  const slash = text.indexOf("/");
  const lenText = slash < 0 ? "" : text.slice(slash + 1);
  if (slash < 0 || !/^\d{1,2}$/.test(lenText) || Number(lenText) > 32) {
    throw new SyntaxError(`Cannot parse IPv4 CIDR "${text}"`);
  }
  const prefixLength = Number(lenText);
  const addr = parseIpv4(text.slice(0, slash));
  return { network: (addr & maskOf(prefixLength)) >>> 0, prefixLength };
}

/** The canonical text of a CIDR, for example `10.240.0.0/16`. */
export function formatCidr(cidr: Ipv4Cidr): string {
  return `${formatIpv4(cidr.network)}/${cidr.prefixLength}`;
}

/** The broadcast (last) address of a CIDR. */
export function broadcastOf(cidr: Ipv4Cidr): number {
  return (cidr.network | (~maskOf(cidr.prefixLength) >>> 0)) >>> 0;
}

/** The gateway of a subnet as Azure defines it: host number 1. */
export function gatewayOf(cidr: Ipv4Cidr): number {
  return cidr.prefixLength >= 31 ? cidr.network : cidr.network + 1;
}

/** True when `addr` lies in `cidr`. */
export function cidrContains(cidr: Ipv4Cidr, addr: number): boolean {
  return ((addr & maskOf(cidr.prefixLength)) >>> 0) === cidr.network;
}

/**
 * Normalises a MAC in any of the three Azure/Linux forms to 12 lower-case
 * hex digits (`00:0D:3A:F9:DC:A6`, `00-0d-...`, `000D3AF9DCA6`). `"*"` stays.
 *
 * @param text The MAC text.
 * @returns The normalised MAC.
 * @throws {SyntaxError} When `text` is no MAC.
 */
export function normalizeMac(text: string): string {
  if (text === "*") return "*";
  const hex = text.replace(/[:\-.]/g, "").toLowerCase();
  if (!/^[0-9a-f]{12}$/.test(hex)) {
    throw new SyntaxError(`Cannot parse MAC address "${text}"`);
  }
  return hex;
}

/** Strips an optional `/prefix` from an address (`10.0.0.5/24` -> `10.0.0.5`). */
export function stripPrefix(text: string): string {
  const slash = text.indexOf("/");
  return slash < 0 ? text : text.slice(0, slash);
}
