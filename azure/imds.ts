/**
 * IMDS (Instance Metadata Service) client: the VM's compute identity and its
 * NICs as {@linkcode HostInterface} records.
 *
 * @module
 */
import {
  azureMac,
  contains,
  inSubnet,
  looksLikeIpv6,
  networkOf,
} from "@vnet/address";
import { directFetch } from "./direct_fetch.ts";
import { fetchText, isTransientStatus, type RetryOptions } from "./retry.ts";
import type { HostInterface, HostIpAddress, HostIpSubnet } from "./types.ts";

/** The documented IMDS base URL. */
export const IMDS_URL = "http://169.254.169.254";
/** The api-version this client sends (has `resourceId`). */
export const IMDS_API_VERSION = "2021-02-01";

/** Options of the IMDS calls. */
export interface ImdsOptions extends RetryOptions {
  /** Base URL (default {@linkcode IMDS_URL}). */
  baseUrl?: string | undefined;
  /** api-version (default {@linkcode IMDS_API_VERSION}). */
  apiVersion?: string | undefined;
}

/** The compute fields of `/metadata/instance` this project uses. */
export interface ImdsCompute {
  readonly subscriptionId: string;
  readonly resourceGroupName: string;
  readonly resourceId: string;
  readonly name: string;
  readonly location: string;
  /** Empty unless the VM is a scale-set instance. */
  readonly vmScaleSetName: string;
}

/** `/metadata/instance`, reduced to compute fields plus NICs. */
export interface ImdsInstance {
  readonly compute: ImdsCompute;
  /** The NICs, as {@linkcode getImdsInterfaces} returns them. */
  readonly network: HostInterface[];
}

function malformed(what: string): SyntaxError {
  return new SyntaxError(`Cannot parse IMDS ${what}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function str(node: Record<string, unknown>, key: string, what: string): string {
  const value = node[key];
  if (value === undefined) return "";
  if (typeof value !== "string") {
    throw malformed(`${what}.${key}: not a string`);
  }
  return value;
}

/** Azure gives every IPv6 subnet of a VNET a /64. */
const AZURE_IPV6_PREFIX = 64;

/**
 * The subnets of one family of an IMDS interface (`ipv4` or `ipv6`): each
 * address goes to the listed subnet holding it. IMDS lists the primary
 * address first. It lists no IPv6 subnet, so an IPv6 address without one
 * goes to its /64.
 */
function familySubnets(
  node: Record<string, unknown>,
  spec: { key: "ipv4" | "ipv6"; what: string },
): HostIpSubnet[] {
  const { key, what } = spec;
  const fam = node[key] ?? {};
  if (!isRecord(fam)) throw malformed(`${what}.${key}: not an object`);
  const rawSubnets = fam.subnet ?? [];
  const rawAddresses = fam.ipAddress ?? [];
  if (!Array.isArray(rawSubnets) || !Array.isArray(rawAddresses)) {
    throw malformed(`${what}.${key}: subnet or ipAddress is not an array`);
  }
  const prefixes = rawSubnets.map((s, i) => {
    if (!isRecord(s)) throw malformed(`${what}.${key}.subnet[${i}]`);
    const where = `${what}.${key}.subnet[${i}]`;
    return `${str(s, "address", where)}/${str(s, "prefix", where)}`;
  });
  const buckets = prefixes.map((): HostIpAddress[] => []);
  rawAddresses.forEach((a, i) => {
    const where = `${what}.${key}.ipAddress[${i}]`;
    if (!isRecord(a)) throw malformed(where);
    const address = str(a, "privateIpAddress", where);
    const holds = key === "ipv4" ? inSubnet : inSubnet6;
    let k = prefixes.findIndex((p) => holds(address, p));
    if (k === -1 && key === "ipv6") {
      k = prefixes.push(ipv6Subnet(address, where)) - 1;
      buckets.push([]);
    }
    const bucket = buckets[k === -1 ? 0 : k];
    if (bucket === undefined) {
      throw malformed(`${where}: address "${address}" has no subnet`);
    }
    bucket.push({ address, isPrimary: i === 0 });
  });
  return prefixes.map((prefix, i): HostIpSubnet => ({
    prefix,
    addresses: buckets[i] ?? [],
  }));
}

/** True when the IPv6 `subnet` holds `address` (false for bad text). */
function inSubnet6(address: string, subnet: string): boolean {
  try {
    return looksLikeIpv6(subnet) && contains(subnet, address);
  } catch {
    return false;
  }
}

/** The /64 of an IPv6 address. */
function ipv6Subnet(address: string, where: string): string {
  if (!looksLikeIpv6(address)) {
    throw malformed(`${where}: "${address}" is no IPv6 address`);
  }
  try {
    return networkOf(`${address}/${AZURE_IPV6_PREFIX}`);
  } catch (cause) {
    throw new SyntaxError(`Cannot parse IMDS ${where}`, { cause });
  }
}

function parseInterface(node: unknown, index: number): HostInterface {
  const what = `interface[${index}]`;
  if (!isRecord(node)) throw malformed(`${what}: not an object`);
  let macAddress: string;
  try {
    macAddress = azureMac(str(node, "macAddress", what));
  } catch (cause) {
    throw new SyntaxError(`Cannot parse IMDS ${what}.macAddress`, { cause });
  }
  const subnets = [
    ...familySubnets(node, { key: "ipv4", what }),
    ...familySubnets(node, { key: "ipv6", what }),
  ];
  return { macAddress, isPrimary: index === 0, subnets };
}

function parseInterfaces(list: unknown): HostInterface[] {
  if (!Array.isArray(list)) throw malformed("network.interface: not an array");
  return list.map(parseInterface);
}

function parseJson(body: string, what: string): unknown {
  try {
    return JSON.parse(body);
  } catch (cause) {
    throw new SyntaxError(`Cannot parse IMDS ${what} JSON`, { cause });
  }
}

/**
 * Whether an IMDS status is worth retrying: 429 and 5xx as for every Azure
 * endpoint, and also 404 and 410, which IMDS answers while the VM starts
 * (Azure's guidance for IMDS clients: retry 404, 410, 429 and 5xx).
 *
 * @param status The HTTP status.
 * @returns True for 404, 410, 429 and 500..599.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isTransientImdsStatus } from "./imds.ts";
 *
 * assert.equal(isTransientImdsStatus(410), true);
 * assert.equal(isTransientImdsStatus(400), false);
 * ```
 */
export function isTransientImdsStatus(status: number): boolean {
  return status === 404 || status === 410 || isTransientStatus(status);
}

async function getImds(
  path: string,
  options: ImdsOptions,
  extraQuery = "",
): Promise<string> {
  const base = (options.baseUrl ?? IMDS_URL).replace(/\/+$/, "");
  const version = encodeURIComponent(options.apiVersion ?? IMDS_API_VERSION);
  const url = `${base}${path}?api-version=${version}${extraQuery}`;
  const { body } = await fetchText(url, {
    ...options,
    fetch: options.fetch ?? directFetch,
    init: { method: "GET", headers: { Metadata: "true" } },
    isTransient: isTransientImdsStatus,
  });
  return body;
}

/**
 * Reads the VM's NICs from IMDS
 * (`/metadata/instance/network/interface?format=json`).
 *
 * Each subnet prefix is built from `address` + `prefix`; each address goes
 * to the subnet containing it. IMDS marks neither the primary NIC nor the
 * primary address, so by convention the FIRST interface and, per interface,
 * the FIRST IPv4 address are marked `isPrimary` (IMDS lists the primary
 * ipconfig first in practice). MACs are normalised. The request goes
 * straight to IMDS, never through a proxy ({@linkcode directFetch}), unless
 * a `fetch` is given.
 *
 * @param options Base URL, api-version, `fetch`, `timeoutMs`, `retries`,
 *   `sleep`.
 * @returns The NICs.
 * @throws {AzureHttpError} On an HTTP error (400 when the `Metadata` header
 *   is refused) or a network failure/timeout; 404, 410, 429 and 5xx are
 *   retried first and are `transient`.
 * @throws {SyntaxError} When the body is not the documented JSON shape.
 *
 * @example Usage
 * ```ts ignore
 * import { getImdsInterfaces } from "@vnet/azure";
 *
 * const nics = await getImdsInterfaces({ baseUrl: "http://127.0.0.1:8080" });
 * ```
 */
export async function getImdsInterfaces(
  options: ImdsOptions = {},
): Promise<HostInterface[]> {
  const body = await getImds(
    "/metadata/instance/network/interface",
    options,
    "&format=json",
  );
  return parseInterfaces(parseJson(body, "network interface"));
}

/**
 * Reads `/metadata/instance`: the compute identity (subscription, resource
 * group, resource id, name, location, scale set) and the NICs.
 *
 * @param options As for {@linkcode getImdsInterfaces}.
 * @returns The compute fields and the NICs.
 * @throws {AzureHttpError} On an HTTP error or network failure/timeout.
 * @throws {SyntaxError} When the body is not the documented JSON shape.
 *
 * @example Usage
 * ```ts ignore
 * import { getImdsInstance } from "@vnet/azure";
 *
 * const { compute } = await getImdsInstance({ baseUrl: "http://127.0.0.1:8080" });
 * ```
 */
export async function getImdsInstance(
  options: ImdsOptions = {},
): Promise<ImdsInstance> {
  const doc = parseJson(
    await getImds("/metadata/instance", options),
    "instance",
  );
  if (!isRecord(doc) || !isRecord(doc.compute) || !isRecord(doc.network)) {
    throw malformed("instance: compute or network missing");
  }
  const c = doc.compute;
  const compute: ImdsCompute = {
    subscriptionId: str(c, "subscriptionId", "compute"),
    resourceGroupName: str(c, "resourceGroupName", "compute"),
    resourceId: str(c, "resourceId", "compute"),
    name: str(c, "name", "compute"),
    location: str(c, "location", "compute"),
    vmScaleSetName: str(c, "vmScaleSetName", "compute"),
  };
  return { compute, network: parseInterfaces(doc.network.interface) };
}
