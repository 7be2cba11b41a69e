/**
 * The `dns` object of network configs and results: its schema (one for
 * every config parser) and a copy that keeps only the four CNI fields.
 *
 * @module
 */
import * as z from "zod/mini";
import type { Dns } from "./spec.ts";

/**
 * The schema of `dns` in a network config: `nameservers`, `search` and
 * `options` are lists of strings, `domain` a string, each optional. Other
 * keys are kept (use {@link copyDns} to drop them).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { DnsSchema } from "./dns.ts";
 * assert.ok(DnsSchema.safeParse({ nameservers: ["10.0.0.10"] }).success);
 * assert.ok(!DnsSchema.safeParse({ nameservers: "10.0.0.10" }).success);
 * ```
 */
export const DnsSchema = z.looseObject({
  nameservers: z.optional(z.array(z.string())),
  domain: z.optional(z.string()),
  search: z.optional(z.array(z.string())),
  options: z.optional(z.array(z.string())),
});

/** What {@link copyDns} reads: a {@link Dns} or a parsed `dns` object. */
export interface DnsLike {
  /** Name servers. */
  readonly nameservers?: readonly string[] | undefined;
  /** The local domain. */
  readonly domain?: string | undefined;
  /** Search domains. */
  readonly search?: readonly string[] | undefined;
  /** resolver options. */
  readonly options?: readonly string[] | undefined;
}

/**
 * Copies the four CNI fields of a `dns` object (lists copied, absent fields
 * left out, other keys dropped).
 *
 * @param dns The object to copy.
 * @returns A new {@link Dns}.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { copyDns } from "./dns.ts";
 * const dns = { nameservers: ["10.0.0.10"], domain: undefined, x: 1 };
 * assert.deepEqual(copyDns(dns), { nameservers: ["10.0.0.10"] });
 * ```
 */
export function copyDns(dns: DnsLike): Dns {
  const out: Dns = {};
  if (dns.nameservers !== undefined) out.nameservers = [...dns.nameservers];
  if (dns.domain !== undefined) out.domain = dns.domain;
  if (dns.search !== undefined) out.search = [...dns.search];
  if (dns.options !== undefined) out.options = [...dns.options];
  return out;
}
