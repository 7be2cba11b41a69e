/**
 * The IPAM part of the network config: validated once per call with
 * `zod/mini`, then turned into {@link IpamConfig}.
 *
 * @module
 */
import * as z from "zod/mini";
import {
  CniError,
  CODES,
  copyDns,
  describeIssues,
  DnsSchema,
  redactSecrets,
} from "@vnet/cni";
import type { Dns, NetConf } from "@vnet/cni";
import { IMDS_URL, NMAGENT_URL } from "@vnet/azure";
import type { HostInterface } from "@vnet/azure";
import {
  azureMac,
  ipFamily,
  isIpv4,
  looksLikeIpv6,
  parseCidr,
  parseIpv4Cidr,
} from "@vnet/address";

/** Azure's DNS, the default nameserver for the azure and imds sources. */
export const AZURE_DNS = "168.63.129.16";

/** The default refresh interval in seconds. */
export const DEFAULT_QUERY_INTERVAL_S = 10;

/** The default sticky cooldown in seconds (`ipam.stickyCooldown`, #16). */
export const DEFAULT_STICKY_COOLDOWN_S = 300;

/** Where the addresses come from. */
export type IpamEnvironment = "azure" | "imds" | "static";

/** The validated IPAM configuration. */
export interface IpamConfig {
  readonly environment: IpamEnvironment;
  /** Wireserver URL (azure). */
  readonly queryUrl: string;
  /** IMDS base URL (imds). */
  readonly imdsUrl: string;
  /** Minimum time between source refreshes, in ms. */
  readonly queryIntervalMs: number;
  /** Per-attempt source timeout in ms (`ipam.queryTimeout`, seconds). */
  readonly queryTimeoutMs?: number;
  /** `ipam.subnet`: the pool to allocate from. */
  readonly subnet?: string;
  /** `ipam.ipAddress`: the address to request. */
  readonly ipAddress?: string;
  /** Top-level `master`: the host link whose NIC is used. */
  readonly master?: string;
  /** Result DNS: top-level `dns`, else `ipam.dns`, else the default. */
  readonly dns?: Dns;
  /** static: the configured interfaces. */
  readonly interfaces: readonly HostInterface[];
  /** static shorthand (`addresses` without `interfaces`): skip MAC matching. */
  readonly unbound: boolean;
  /**
   * `ipam.sticky` (#16): a released address is remembered for its pod for
   * `cooldownMs` (`ipam.stickyCooldown`, seconds). Absent when off.
   */
  readonly sticky?: { readonly cooldownMs: number };
}

const interfaceSchema = z.object({
  macAddress: z.string(),
  isPrimary: z.optional(z.boolean()),
  subnets: z.array(z.object({
    prefix: z.string(),
    addresses: z.array(z.object({
      address: z.string(),
      isPrimary: z.optional(z.boolean()),
    })),
  })),
});

const ipamSchema = z.object({
  type: z.string(),
  environment: z.optional(z.enum(["azure", "imds", "static"])),
  queryUrl: z.optional(z.string()),
  imdsUrl: z.optional(z.string()),
  queryInterval: z.optional(z.union([z.string(), z.number()])),
  queryTimeout: z.optional(z.union([z.string(), z.number()])),
  subnet: z.optional(z.string()),
  ipAddress: z.optional(z.string()),
  addressSpace: z.optional(z.string()),
  dns: z.optional(DnsSchema),
  primaryIp: z.optional(z.string()),
  addresses: z.optional(z.array(z.string())),
  ipv6Subnet: z.optional(z.string()),
  ipv6Addresses: z.optional(z.array(z.string())),
  interfaces: z.optional(z.array(interfaceSchema)),
  sticky: z.optional(z.boolean()),
  stickyCooldown: z.optional(z.union([z.string(), z.number()])),
});

/** The `ipam` section inside the whole config, so issue paths start with `ipam`. */
const confSchema = z.looseObject({ ipam: ipamSchema });

type IpamInput = z.infer<typeof ipamSchema>;

function invalid(problems: readonly string[]): CniError {
  return new CniError(
    CODES.invalidConfig,
    `Invalid ipam config: ${problems.join("; ")}`,
  );
}

/** Why `value` is no usable source URL, or undefined when it is one. */
function urlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "is no URL";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `must be an http or https URL, not "${url.protocol}"`;
  }
  if (url.hostname === "") return "has no host";
  return undefined;
}

/** A field and its quoted value for messages, URL secrets removed. */
function quoted(field: string, value: unknown): string {
  return `field "${field}" ${redactSecrets(JSON.stringify(value) ?? "")}`;
}

/** The seconds in `ipam.queryInterval`/`ipam.queryTimeout`, or NaN. */
function seconds(value: string | number): number {
  if (typeof value === "string" && value.trim() === "") return Number.NaN;
  return Number(value);
}

/**
 * Every problem of a section that has the right shape: URLs, durations,
 * addresses and what the static source needs.
 */
function ipamProblems(ipam: IpamInput): string[] {
  const problems: string[] = [];
  for (
    const [k, v] of [["queryUrl", ipam.queryUrl], ["imdsUrl", ipam.imdsUrl]]
  ) {
    const problem = v === undefined || v === "" ? undefined : urlProblem(v);
    if (problem !== undefined) {
      problems.push(`${quoted(`ipam.${k}`, v)} ${problem}`);
    }
  }
  for (
    const [k, v] of [
      ["queryInterval", ipam.queryInterval],
      ["stickyCooldown", ipam.stickyCooldown],
    ] as const
  ) {
    if (v === undefined) continue;
    const s = seconds(v);
    if (!Number.isFinite(s) || s < 0) {
      problems.push(`${quoted(`ipam.${k}`, v)} must be seconds >= 0`);
    }
  }
  if (ipam.queryTimeout !== undefined) {
    const s = seconds(ipam.queryTimeout);
    if (!Number.isFinite(s) || s <= 0 || s > 300) {
      problems.push(
        `${
          quoted("ipam.queryTimeout", ipam.queryTimeout)
        } must be seconds in (0, 300]`,
      );
    }
  }
  if (ipam.subnet !== undefined && ipam.subnet !== "") {
    try {
      parseIpv4Cidr(ipam.subnet);
    } catch {
      problems.push(`${quoted("ipam.subnet", ipam.subnet)} is no IPv4 CIDR`);
    }
  }
  for (
    const [k, v] of [["ipAddress", ipam.ipAddress], [
      "primaryIp",
      ipam.primaryIp,
    ]]
  ) {
    if (v !== undefined && v !== "" && !isIpv4(v.replace(/\/\d+$/, ""))) {
      problems.push(`${quoted(`ipam.${k}`, v)} is no IPv4 address`);
    }
  }
  (ipam.addresses ?? []).forEach((a, i) => {
    if (!isIpv4(a)) {
      problems.push(`${quoted(`ipam.addresses.${i}`, a)} is no IPv4 address`);
    }
  });
  problems.push(...ipv6Problems(ipam));
  (ipam.interfaces ?? []).forEach((nic, i) =>
    nic.subnets.forEach((sub, j) => {
      const at = `ipam.interfaces.${i}.subnets.${j}`;
      // An IPv6 prefix makes an IPv6 subnet, whose addresses are IPv6.
      const six = looksLikeIpv6(sub.prefix);
      const family = six ? "IPv6" : "IPv4";
      if (six ? !isIpv6Cidr(sub.prefix) : !isIpv4Cidr(sub.prefix)) {
        problems.push(
          `${quoted(`${at}.prefix`, sub.prefix)} is no ${family} CIDR`,
        );
      }
      sub.addresses.forEach((a, k) => {
        if (six ? ipFamily(a.address) !== 6 : !isIpv4(a.address)) {
          problems.push(
            `${
              quoted(`${at}.addresses.${k}.address`, a.address)
            } is no ${family} address`,
          );
        }
      });
    })
  );
  if (ipam.environment === "static") {
    if (ipam.interfaces !== undefined) {
      ipam.interfaces.forEach((nic, i) => {
        try {
          azureMac(nic.macAddress, { wildcard: true });
        } catch {
          problems.push(
            `${
              quoted(`ipam.interfaces.${i}.macAddress`, nic.macAddress)
            } is no MAC`,
          );
        }
      });
    } else if (!ipam.subnet || ipam.addresses === undefined) {
      problems.push(
        `environment "static" needs "ipam.subnet" and "ipam.addresses", or "ipam.interfaces"`,
      );
    }
  }
  return problems;
}

/** The DNS object without empty fields, or undefined when nothing is left. */
function isIpv4Cidr(text: string): boolean {
  try {
    parseIpv4Cidr(text);
    return true;
  } catch {
    return false;
  }
}

function isIpv6Cidr(text: string): boolean {
  try {
    return text.includes("/") && parseCidr(text).family === 6;
  } catch {
    return false;
  }
}

/** The static shorthand's IPv6 range: `ipv6Subnet` with `ipv6Addresses`. */
function ipv6Problems(ipam: IpamInput): string[] {
  const problems: string[] = [];
  const subnet = ipam.ipv6Subnet;
  if (subnet !== undefined && subnet !== "" && !isIpv6Cidr(subnet)) {
    problems.push(`${quoted("ipam.ipv6Subnet", subnet)} is no IPv6 CIDR`);
  }
  (ipam.ipv6Addresses ?? []).forEach((a, i) => {
    if (ipFamily(a) !== 6) {
      problems.push(
        `${quoted(`ipam.ipv6Addresses.${i}`, a)} is no IPv6 address`,
      );
    }
  });
  if (
    (subnet === undefined || subnet === "") !==
      (ipam.ipv6Addresses === undefined)
  ) {
    problems.push(`"ipam.ipv6Subnet" and "ipam.ipv6Addresses" go together`);
  }
  return problems;
}

function cleanDns(dns: object | undefined): Dns | undefined {
  if (dns === undefined || typeof dns !== "object") return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(dns)) {
    if (Array.isArray(v) ? v.length > 0 : v !== undefined && v !== "") {
      out[k] = v;
    }
  }
  return Object.keys(out).length === 0 ? undefined : out as Dns;
}

/**
 * Validates the `ipam` section (plus top-level `master` and `dns`).
 *
 * Every invalid field is reported, in one error: the shape (types, the
 * `environment` names), `queryUrl` and `imdsUrl` (http or https URLs with a
 * host), the durations, the addresses and what `static` needs. URL
 * credentials and query values are redacted in the message.
 *
 * @param conf The complete network config the plugin received.
 * @returns The IPAM config with defaults applied.
 * @throws {CniError} Code 7 naming each bad field and what is wrong.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIpamConfig } from "./config.ts";
 * const c = parseIpamConfig({
 *   cniVersion: "1.0.0", name: "azure", type: "azure-vnet",
 *   ipam: { type: "azure-vnet-ipam", queryInterval: "30" },
 * });
 * assert.equal(c.environment, "azure");
 * assert.equal(c.queryIntervalMs, 30_000);
 * assert.throws(
 *   () => parseIpamConfig({
 *     cniVersion: "1.0.0", name: "azure", type: "azure-vnet",
 *     ipam: { type: "azure-vnet-ipam", queryUrl: "file:///etc/passwd", subnet: "x" },
 *   }),
 *   { name: "CniError", code: 7, message: /ipam\.queryUrl.*; .*ipam\.subnet/ },
 * );
 * ```
 */
export function parseIpamConfig(conf: NetConf): IpamConfig {
  if (
    conf.ipam === undefined || typeof conf.ipam !== "object" ||
    conf.ipam === null || Array.isArray(conf.ipam)
  ) {
    throw invalid([`"ipam" is missing`]);
  }
  const parsed = confSchema.safeParse(conf);
  if (!parsed.success) {
    // The fields of the right type are still checked, so that one error
    // names every invalid field.
    const ok = z.partial(ipamSchema).safeParse(
      withoutBadFields(conf.ipam, parsed.error.issues),
    );
    throw invalid([
      describeIssues(parsed.error, redactedInput(conf)),
      ...(ok.success ? ipamProblems(ok.data as IpamInput) : []),
    ]);
  }
  const ipam = parsed.data.ipam;
  const problems = ipamProblems(ipam);
  if (problems.length > 0) throw invalid(problems);
  const environment = ipam.environment ?? "azure";
  const interval = ipam.queryInterval ?? DEFAULT_QUERY_INTERVAL_S;
  const timeoutMs = ipam.queryTimeout === undefined
    ? undefined
    : seconds(ipam.queryTimeout) * 1000;
  const master = typeof conf.master === "string" && conf.master !== ""
    ? conf.master
    : undefined;
  const interfaces = staticInterfaces(environment, ipam);
  const dns = cleanDns(conf.dns as Record<string, unknown> | undefined) ??
    cleanDns(ipam.dns === undefined ? undefined : copyDns(ipam.dns)) ??
    (environment === "static" ? undefined : { nameservers: [AZURE_DNS] });
  return {
    environment,
    queryUrl: ipam.queryUrl || NMAGENT_URL,
    imdsUrl: ipam.imdsUrl || IMDS_URL,
    queryIntervalMs: seconds(interval) * 1000,
    ...(timeoutMs === undefined ? {} : { queryTimeoutMs: timeoutMs }),
    ...(ipam.subnet ? { subnet: ipam.subnet } : {}),
    ...(ipam.ipAddress ? { ipAddress: ipam.ipAddress } : {}),
    ...(master === undefined ? {} : { master }),
    ...(dns === undefined ? {} : { dns }),
    interfaces,
    unbound: environment === "static" && ipam.interfaces === undefined,
    ...(ipam.sticky === true
      ? {
        sticky: {
          cooldownMs:
            seconds(ipam.stickyCooldown ?? DEFAULT_STICKY_COOLDOWN_S) * 1000,
        },
      }
      : {}),
  };
}

/** The `ipam` section without the top-level fields zod found invalid. */
function withoutBadFields(
  ipam: object,
  issues: readonly z.core.$ZodIssue[],
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...ipam };
  for (const issue of issues) {
    const key = issue.path[1];
    if (issue.path[0] === "ipam" && key !== undefined) {
      delete out[String(key)];
    }
  }
  return out;
}

/** The config with URL secrets removed from every string (for messages). */
function redactedInput(value: unknown): unknown {
  if (typeof value === "string") return redactSecrets(value);
  if (Array.isArray(value)) return value.map(redactedInput);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, redactedInput(v)]),
    );
  }
  return value;
}

function staticInterfaces(
  environment: IpamEnvironment,
  ipam: IpamInput,
): HostInterface[] {
  if (environment !== "static") return [];
  if (ipam.interfaces !== undefined) {
    return ipam.interfaces.map((nic) => ({
      macAddress: nic.macAddress,
      isPrimary: nic.isPrimary ?? false,
      subnets: nic.subnets.map((s) => ({
        prefix: s.prefix,
        addresses: s.addresses.map((a) => ({
          address: a.address,
          isPrimary: a.isPrimary ?? false,
        })),
      })),
    }));
  }
  // ipamProblems() made sure both are there.
  const subnet = ipam.subnet ?? "";
  const addresses = (ipam.addresses ?? []).map((address) => ({
    address,
    isPrimary: false,
  }));
  if (ipam.primaryIp) {
    addresses.push({ address: ipam.primaryIp, isPrimary: true });
  }
  const subnets = [{ prefix: subnet, addresses }];
  if (ipam.ipv6Subnet && ipam.ipv6Addresses !== undefined) {
    subnets.push({
      prefix: ipam.ipv6Subnet,
      addresses: ipam.ipv6Addresses.map((address) => ({
        address,
        isPrimary: false,
      })),
    });
  }
  return [{ macAddress: "*", isPrimary: true, subnets }];
}
