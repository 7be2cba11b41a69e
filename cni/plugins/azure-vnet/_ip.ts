/**
 * Small CIDR helpers private to the plugin, on top of `@vnet/address`'s
 * address arithmetic.
 *
 * @module
 */
import { contains, network, parseCidr } from "@vnet/address";

/** Splits `a.b.c.d/len` into address and prefix length (no `/`: host). */
export function splitCidr(cidr: string): { ip: string; prefix: number } {
  const i = cidr.indexOf("/");
  if (i < 0) return { ip: cidr, prefix: cidr.includes(":") ? 128 : 32 };
  return { ip: cidr.slice(0, i), prefix: Number(cidr.slice(i + 1)) };
}

/** True for IPv6 text. */
export function isV6(ip: string): boolean {
  return ip.includes(":");
}

/**
 * The network of an IPv4 CIDR (`10.0.0.5/24` -> `10.0.0.0/24`).
 *
 * @throws {SyntaxError} For unparsable text.
 */
export function networkOf(cidr: string): string {
  const { prefix, family } = parseCidr(cidr);
  if (family !== 4) {
    throw new SyntaxError(`Cannot parse IPv4 CIDR "${cidr}"`);
  }
  return `${network(cidr)}/${prefix}`;
}

/** True when IPv4 `ip` (optionally with a prefix) lies inside `subnet`. */
export function inSubnet(ip: string, subnet: string): boolean {
  const addr = splitCidr(ip).ip;
  if (isV6(addr) || isV6(subnet)) return false;
  try {
    return contains(subnet, addr);
  } catch {
    return false;
  }
}
