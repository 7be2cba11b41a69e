/**
 * The one parser and formatter of IP address text, private to the module:
 * IPv4 as a number, either family as a bigint.
 *
 * @module
 */

/** An address as (bigint value, family). */
export interface IpValue {
  /** The address as an unsigned integer. */
  readonly value: bigint;
  /** 4 or 6. */
  readonly family: 4 | 6;
}

const DOT = 46;
const ZERO = 48;
const NINE = 57;

/**
 * Parses a dotted quad (four parts `0` or `[1-9][0-9]{0,2}` up to 255: no
 * leading zeros, no blanks) into an unsigned 32-bit number, or undefined
 * when `text` is none. One pass over the characters: the IPAM parses every
 * address of a pool several times per ADD.
 */
export function parseV4(text: string): number | undefined {
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || dots === 3) return undefined;
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
      continue;
    }
    // A digit after a leading 0 is a leading zero.
    if (c < ZERO || c > NINE || (digits > 0 && part === 0)) return undefined;
    part = part * 10 + (c - ZERO);
    if (++digits > 3 || part > 255) return undefined;
  }
  if (dots !== 3 || digits === 0) return undefined;
  return n * 256 + part;
}

/**
 * Groups of one side of `::`, or undefined. A dotted quad may end the side
 * only when it ends the address (`last`): it stands for the final 32 bits.
 */
function v6Groups(s: string, options: { last: boolean }): number[] | undefined {
  if (s === "") return [];
  const out: number[] = [];
  const items = s.split(":");
  for (let i = 0; i < items.length; i++) {
    const item = items[i] ?? "";
    if (options.last && i === items.length - 1 && item.includes(".")) {
      const v4 = parseV4(item);
      if (v4 === undefined) return undefined;
      out.push(Math.floor(v4 / 0x10000), v4 % 0x10000);
    } else {
      if (!/^[0-9a-fA-F]{1,4}$/.test(item)) return undefined;
      out.push(parseInt(item, 16));
    }
  }
  return out;
}

/**
 * Parses IPv6 text into a 128-bit bigint, or undefined when it is none. As
 * with `inet_pton`, a dotted quad may stand only for the final 32 bits
 * (`::ffff:1.2.3.4`, `1:2:3:4:5:6:1.2.3.4`), never before `::`.
 */
export function parseV6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = v6Groups(halves[0] ?? "", { last: halves.length === 1 });
  const tail = halves.length === 2
    ? v6Groups(halves[1] ?? "", { last: true })
    : [];
  if (head === undefined || tail === undefined) return undefined;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  let n = 0n;
  for (const g of [...head, ...new Array<number>(fill).fill(0), ...tail]) {
    n = (n << 16n) | BigInt(g);
  }
  return n;
}

/** Formats an unsigned 32-bit number as a dotted quad. */
export function formatV4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/**
 * Formats a 128-bit value as RFC 5952 text, as `inet_ntop` (glibc's, which
 * libnl's `nl_addr2str` calls, so the kernel side reads the same) writes
 * it: the final 32 bits as a dotted quad after `::ffff:` (IPv4-mapped) and
 * after a `::` of six zero groups (IPv4-compatible, `::1.2.3.4`; `::1`
 * stays hex).
 */
function formatV6(n: bigint): string {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  if (g.slice(0, 5).every((x) => x === 0)) {
    const v4 = formatV4(Number(n & 0xffffffffn));
    if (g[5] === 0xffff) return `::ffff:${v4}`;
    if (g[5] === 0 && g[6] !== 0) return `::${v4}`;
  }
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

/**
 * Parses address text of either family.
 *
 * @throws {TypeError} When `text` is not a string.
 * @throws {SyntaxError} When `text` is no IP address.
 */
export function parseIpValue(text: string): IpValue {
  if (typeof text !== "string") {
    throw new TypeError(`Cannot parse IP address: not a string`);
  }
  const v4 = parseV4(text);
  if (v4 !== undefined) return { value: BigInt(v4), family: 4 };
  const v6 = text.includes(":") ? parseV6(text) : undefined;
  if (v6 !== undefined) return { value: v6, family: 6 };
  throw new SyntaxError(`Cannot parse IP address "${text}"`);
}

/** Formats a value of a family in canonical text. */
export function formatIpValue(value: bigint, family: 4 | 6): string {
  return family === 4 ? formatV4(Number(value)) : formatV6(value);
}

/** The address width of a family in bits. */
export function familyBits(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}
