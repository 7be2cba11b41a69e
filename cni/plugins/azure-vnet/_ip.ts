/**
 * Small IPv4 helpers private to the plugin.
 *
 * @module
 */

/** Parses dotted IPv4 text to a 32-bit number, or undefined. */
export function ipv4ToInt(ip: string): number | undefined {
  const parts = ip.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

/** Formats a 32-bit number as dotted IPv4 text. */
export function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => (Math.floor(n / 2 ** s) % 256)).join(".");
}

/** Splits `a.b.c.d/len` into address and prefix length. */
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
  const { ip, prefix } = splitCidr(cidr);
  const n = ipv4ToInt(ip);
  if (n === undefined || !(prefix >= 0 && prefix <= 32)) {
    throw new SyntaxError(`Cannot parse IPv4 CIDR "${cidr}"`);
  }
  const size = 2 ** (32 - prefix);
  return `${intToIpv4(Math.floor(n / size) * size)}/${prefix}`;
}

/** True when IPv4 `ip` lies inside IPv4 `subnet` (CIDR). */
export function inSubnet(ip: string, subnet: string): boolean {
  const { prefix } = splitCidr(subnet);
  if (isV6(ip) || isV6(subnet)) return false;
  try {
    return networkOf(`${splitCidr(ip).ip}/${prefix}`) === networkOf(subnet);
  } catch {
    return false;
  }
}
