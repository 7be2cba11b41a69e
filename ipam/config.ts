/**
 * The IPAM part of the network config: validated once per call with
 * `zod/mini`, then turned into {@link IpamConfig}.
 *
 * @module
 */
import * as z from "zod/mini";
import { CniError, CODES } from "@vnet/cni";
import type { Dns, NetConf } from "@vnet/cni";
import { IMDS_URL, NMAGENT_URL } from "@vnet/azure";
import type { HostInterface } from "@vnet/azure";
import { isIpv4, normalizeMac, parseCidr } from "./_ip.ts";

/** Azure's DNS, the default nameserver for the azure and imds sources. */
export const AZURE_DNS = "168.63.129.16";

/** The default refresh interval in seconds. */
export const DEFAULT_QUERY_INTERVAL_S = 10;

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
}

const dnsSchema = z.object({
  nameservers: z.optional(z.array(z.string())),
  domain: z.optional(z.string()),
  search: z.optional(z.array(z.string())),
  options: z.optional(z.array(z.string())),
});

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
  dns: z.optional(dnsSchema),
  primaryIp: z.optional(z.string()),
  addresses: z.optional(z.array(z.string())),
  interfaces: z.optional(z.array(interfaceSchema)),
});

function invalid(msg: string, cause?: unknown): CniError {
  return new CniError(
    CODES.invalidConfig,
    `Invalid ipam config: ${msg}`,
    cause === undefined ? {} : { cause },
  );
}

/** The DNS object without empty fields, or undefined when nothing is left. */
function cleanDns(dns: Record<string, unknown> | undefined): Dns | undefined {
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
 * @param conf The complete network config the plugin received.
 * @returns The IPAM config with defaults applied.
 * @throws {CniError} Code 7 naming the bad field.
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
 * ```
 */
export function parseIpamConfig(conf: NetConf): IpamConfig {
  if (conf.ipam === undefined || typeof conf.ipam !== "object") {
    throw invalid(`"ipam" is missing`);
  }
  const parsed = ipamSchema.safeParse(conf.ipam);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = ["ipam", ...(issue?.path ?? [])].join(".");
    throw invalid(`"${where}": ${issue?.message ?? "invalid"}`);
  }
  const ipam = parsed.data;
  const environment = ipam.environment ?? "azure";
  const interval = ipam.queryInterval ?? DEFAULT_QUERY_INTERVAL_S;
  const seconds = typeof interval === "number" ? interval : Number(interval);
  if (
    (typeof interval === "string" && interval.trim() === "") ||
    !Number.isFinite(seconds) || seconds < 0
  ) {
    throw invalid(
      `"ipam.queryInterval" must be seconds >= 0, got "${interval}"`,
    );
  }
  let timeoutMs: number | undefined;
  if (ipam.queryTimeout !== undefined) {
    const t = Number(ipam.queryTimeout);
    if (
      String(ipam.queryTimeout).trim() === "" || !Number.isFinite(t) ||
      t <= 0 || t > 300
    ) {
      throw invalid(
        `"ipam.queryTimeout" must be seconds in (0, 300], got "${ipam.queryTimeout}"`,
      );
    }
    timeoutMs = t * 1000;
  }
  if (ipam.subnet !== undefined && ipam.subnet !== "") {
    try {
      parseCidr(ipam.subnet);
    } catch (err) {
      throw invalid(`"ipam.subnet" is no IPv4 CIDR: "${ipam.subnet}"`, err);
    }
  }
  for (
    const [k, v] of [["ipAddress", ipam.ipAddress], [
      "primaryIp",
      ipam.primaryIp,
    ]]
  ) {
    if (v !== undefined && v !== "" && !isIpv4(v.replace(/\/\d+$/, ""))) {
      throw invalid(`"ipam.${k}" is no IPv4 address: "${v}"`);
    }
  }
  const master = typeof conf.master === "string" && conf.master !== ""
    ? conf.master
    : undefined;
  const interfaces = staticInterfaces(environment, ipam);
  const dns = cleanDns(conf.dns as Record<string, unknown> | undefined) ??
    cleanDns(ipam.dns) ??
    (environment === "static" ? undefined : { nameservers: [AZURE_DNS] });
  return {
    environment,
    queryUrl: ipam.queryUrl || NMAGENT_URL,
    imdsUrl: ipam.imdsUrl || IMDS_URL,
    queryIntervalMs: seconds * 1000,
    ...(timeoutMs === undefined ? {} : { queryTimeoutMs: timeoutMs }),
    ...(ipam.subnet ? { subnet: ipam.subnet } : {}),
    ...(ipam.ipAddress ? { ipAddress: ipam.ipAddress } : {}),
    ...(master === undefined ? {} : { master }),
    ...(dns === undefined ? {} : { dns }),
    interfaces,
    unbound: environment === "static" && ipam.interfaces === undefined,
  };
}

function staticInterfaces(
  environment: IpamEnvironment,
  ipam: z.infer<typeof ipamSchema>,
): HostInterface[] {
  if (environment !== "static") return [];
  if (ipam.interfaces !== undefined) {
    return ipam.interfaces.map((nic, i) => {
      try {
        normalizeMac(nic.macAddress);
      } catch (err) {
        throw invalid(
          `"ipam.interfaces.${i}.macAddress" is no MAC: "${nic.macAddress}"`,
          err,
        );
      }
      return {
        macAddress: nic.macAddress,
        isPrimary: nic.isPrimary ?? false,
        subnets: nic.subnets.map((s) => ({
          prefix: s.prefix,
          addresses: s.addresses.map((a) => ({
            address: a.address,
            isPrimary: a.isPrimary ?? false,
          })),
        })),
      };
    });
  }
  if (!ipam.subnet || ipam.addresses === undefined) {
    throw invalid(
      `environment "static" needs "ipam.subnet" and "ipam.addresses", or "ipam.interfaces"`,
    );
  }
  const addresses = ipam.addresses.map((address) => ({
    address,
    isPrimary: false,
  }));
  if (ipam.primaryIp) {
    addresses.push({ address: ipam.primaryIp, isPrimary: true });
  }
  return [{
    macAddress: "*",
    isPrimary: true,
    subnets: [{ prefix: ipam.subnet, addresses }],
  }];
}
