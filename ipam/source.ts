/**
 * Address sources and refresh: the wireserver (NMAgent XML), IMDS, or a
 * static list from the config; host link discovery by MAC; and the rules
 * for when a refresh is due. The fetch itself runs outside the state lock.
 *
 * @module
 */
import { getImdsInterfaces, getInterfaceInfo } from "@vnet/azure";
import type { FetchFn, HostInterface } from "@vnet/azure";
import { redactUrl } from "@vnet/cni";
import { azureMac } from "@vnet/address";
import { sameBoot } from "./boot_id.ts";
import type { IpamConfig } from "./config.ts";
import { poolSpecsFromInterfaces } from "./pool.ts";
import type { HostLink, PoolSpec } from "./pool.ts";
import type { IpamState } from "./state.ts";

/** Knobs of the source clients (all injectable for tests). */
export interface SourceOptions {
  /** `fetch` for the wireserver and IMDS. */
  fetch?: FetchFn | undefined;
  /** The host's links; default {@link readHostLinks}. */
  hostMacs?: (() => HostLink[]) | undefined;
  /** Per-attempt timeout in ms (client default 5000). */
  timeoutMs?: number | undefined;
  /** Retries after the first attempt (client default 2). */
  retries?: number | undefined;
  /** Sleep between retries. */
  sleep?: ((ms: number) => Promise<void>) | undefined;
}

/**
 * Reads the host's links and MACs through `Deno.networkInterfaces()`
 * (getifaddrs in the calling thread's network namespace; needs only
 * `--allow-sys=networkInterfaces`). Deno refuses `/sys` and `/proc` file
 * reads to anything short of `--allow-all`, so `/sys/class/net` is not used.
 *
 * Only links that hold an address are listed. That covers the NIC (it holds
 * the primary address) and, once the network exists, the bridge, whose MAC is
 * pinned to the NIC's.
 *
 * @returns Every addressed link with its normalised MAC and its addresses,
 *   sorted by name.
 */
export function readHostLinks(): HostLink[] {
  const byName = new Map<string, { mac: string; addresses: string[] }>();
  for (const nif of Deno.networkInterfaces()) {
    if (nif.mac === "") continue;
    try {
      const link = byName.get(nif.name) ??
        { mac: azureMac(nif.mac), addresses: [] };
      link.addresses.push(nif.address);
      byName.set(nif.name, link);
    } catch {
      // Not an Ethernet-style address: not a NIC candidate.
    }
  }
  return [...byName].map(([name, link]) => ({ name, ...link }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Names the source for messages: the URL with its credentials and query
 * values redacted (messages reach kubelet events and the log), or
 * `static config`.
 *
 * @param config The IPAM config.
 * @returns Text such as `http://168.63.129.16/machine/plugins?comp=REDACTED&type=REDACTED`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIpamConfig } from "./config.ts";
 * import { describeSource } from "./source.ts";
 * const config = parseIpamConfig({
 *   cniVersion: "1.0.0", name: "azure", type: "azure-vnet",
 *   ipam: { type: "azure-vnet-ipam", queryUrl: "http://u:pw@10.0.0.1/x?sig=abc" },
 * });
 * assert.equal(describeSource(config), "http://REDACTED@10.0.0.1/x?sig=REDACTED");
 * ```
 */
export function describeSource(config: IpamConfig): string {
  switch (config.environment) {
    case "azure":
      return redactUrl(config.queryUrl);
    case "imds":
      return redactUrl(config.imdsUrl);
    default:
      return "static config";
  }
}

/**
 * Whether a (network) refresh is due: no state yet, never refreshed, the
 * interval passed, the clock went backwards, or the host rebooted (the boot
 * id changed beyond the wobble that `sameBoot()` allows).
 *
 * @param state The persisted state.
 * @param options Interval, current time and boot id.
 * @returns True when the source should be queried.
 */
export function refreshDue(
  state: IpamState | undefined,
  options: { intervalMs: number; now: number; bootId: string },
): boolean {
  if (state === undefined || state.lastRefresh <= 0) return true;
  if (!sameBoot(state.bootId, options.bootId)) return true;
  const age = options.now - state.lastRefresh;
  return age < 0 || age >= options.intervalMs;
}

/**
 * Reads the interfaces from the configured source. Network I/O for
 * `azure` and `imds`; none for `static`.
 *
 * @param config The IPAM config.
 * @param options `fetch`, timeouts and retries.
 * @returns The interfaces as reported.
 * @throws {AzureHttpError} On an HTTP error, network failure or timeout.
 * @throws {SyntaxError} When the document is malformed.
 */
export function fetchInterfaces(
  config: IpamConfig,
  options: SourceOptions = {},
): Promise<HostInterface[]> {
  const retry = {
    fetch: options.fetch,
    timeoutMs: options.timeoutMs,
    retries: options.retries,
    sleep: options.sleep,
  };
  switch (config.environment) {
    case "azure":
      return getInterfaceInfo({ ...retry, url: config.queryUrl });
    case "imds":
      return getImdsInterfaces({ ...retry, baseUrl: config.imdsUrl });
    default:
      return Promise.resolve([...config.interfaces]);
  }
}

/**
 * Turns what the source reported into pool specs for this host: NICs are
 * matched to host links by MAC. `master` binds the wildcard MAC and names
 * its NIC's pools, but keeps no NIC out: it applies at allocation
 * (`master.ts`).
 *
 * @param config The IPAM config.
 * @param interfaces What the source reported.
 * @param options `hostMacs` override.
 * @returns The pool specs.
 */
export function poolSpecsFor(
  config: IpamConfig,
  interfaces: readonly HostInterface[],
  options: SourceOptions = {},
): PoolSpec[] {
  const links = config.unbound ? [] : (options.hostMacs ?? readHostLinks)();
  return poolSpecsFromInterfaces(interfaces, links, {
    ...(config.master === undefined ? {} : { master: config.master }),
    unbound: config.unbound,
  });
}
