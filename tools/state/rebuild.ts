/**
 * Pure pieces of `state repair`: reading pod DNAT rules back from
 * `ebtables -L` lines (the plugin's parser, re-exported), and rebuilding the
 * IPAM document from the network plugin's endpoints.
 *
 * @module
 */
import { IPAM_STATE_VERSION, type IpamState, type PoolState } from "@vnet/ipam";
import type { AzureVnetState } from "@vnet/azure-vnet";
import {
  azureMac,
  inSubnet,
  isIpv4,
  parseIpv4,
  stripPrefix,
} from "@vnet/address";

/**
 * Reading pod DNAT rules back lives in the plugin (its GC and ADD need it);
 * re-exported here for the tool.
 */
export { parsePodDnatRules, type PodDnat } from "@vnet/azure-vnet";

/** An address held outside any endpoint record (seen in the kernel only). */
export interface ExtraHold {
  /** The IPv4 address. */
  readonly ip: string;
  /** The subnet (CIDR) it belongs to. */
  readonly subnet: string;
  /** The key it is held under. */
  readonly containerId: string;
  /** The key's ifname. */
  readonly ifName: string;
}

/** Options of {@link ipamFromEndpoints}. */
export interface IpamRebuildOptions {
  /** Addresses visible in the kernel but in no endpoint record. */
  extra?: readonly ExtraHold[];
}

/** The rebuilt document and what the rebuild had to say. */
export interface IpamRebuild {
  /** The new IPAM state (lastRefresh 0: the next ADD refreshes). */
  readonly ipam: IpamState;
  /** Addresses held, as `ip containerId/ifName`. */
  readonly held: string[];
  /** Problems worth telling the operator. */
  readonly notes: string[];
}

function byIp(a: string, b: string): number {
  return (isIpv4(a) ? parseIpv4(a) : 0) - (isIpv4(b) ? parseIpv4(b) : 0);
}

/**
 * Rebuilds the IPAM document from the network plugin's state: one pool per
 * network subnet (gateway, master MAC, the node's primary IP), every
 * endpoint address held under its container id and ifname. Free addresses
 * are not known here: `lastRefresh` is 0, so the next ADD refreshes from the
 * source, which adds them back while keeping the held ones.
 *
 * @param state The network plugin's state.
 * @param options Extra holds seen only in the kernel.
 * @returns The document, the holds and notes.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ipamFromEndpoints } from "./rebuild.ts";
 * const net = {
 *   name: "azure", mode: "bridge" as const, bridge: "azure0", master: "eth0",
 *   masterMac: "00:0d:3a:f9:dc:a6", masterMtu: 1500, subnet: "10.0.0.0/24",
 *   gateway: "10.0.0.1", primaryIp: "10.0.0.4", savedAddrs: [],
 *   savedRoutes: [], createdAt: "",
 * };
 * const ep = {
 *   network: "azure", containerId: "c1", ifName: "eth0", netns: "/n",
 *   hostVeth: "azv1", hostMac: "", podMac: "", mtu: 1500,
 *   addresses: ["10.0.0.5/24"], ipamRoute: "in-process" as const,
 *   result: { cniVersion: "1.1.0" },
 * };
 * const { ipam } = ipamFromEndpoints({
 *   version: 1, networks: { azure: net }, endpoints: { "c1/eth0": ep },
 * });
 * assert.equal(ipam.lastRefresh, 0);
 * assert.deepEqual(ipam.pools["10.0.0.0/24"]?.addresses, {
 *   "10.0.0.5": { containerId: "c1", ifName: "eth0" },
 * });
 * ```
 */
export function ipamFromEndpoints(
  state: AzureVnetState,
  options: IpamRebuildOptions = {},
): IpamRebuild {
  const pools: Record<string, PoolState> = {};
  const notes: string[] = [];
  const held: string[] = [];
  for (const net of Object.values(state.networks)) {
    if (pools[net.subnet] !== undefined) continue;
    let macAddress = "";
    try {
      macAddress = azureMac(net.masterMac);
    } catch {
      notes.push(
        `network ${net.name}: master MAC "${net.masterMac}" is no MAC; its pool names none`,
      );
    }
    pools[net.subnet] = {
      subnet: net.subnet,
      gateway: net.gateway,
      ifName: net.master,
      macAddress,
      priority: 0,
      primaryIps: net.primaryIp === undefined ? [] : [net.primaryIp],
      addresses: {},
    };
  }
  function hold(
    ip: string,
    subnet: string | undefined,
    key: { containerId: string; ifName: string },
  ): void {
    const pool = subnet === undefined ? undefined : pools[subnet];
    if (pool === undefined) {
      notes.push(
        `address ${ip} of ${key.containerId}/${key.ifName} is in no recorded network's subnet; not held`,
      );
      return;
    }
    const have = pool.addresses[ip];
    if (have?.containerId !== undefined) {
      if (have.containerId !== key.containerId || have.ifName !== key.ifName) {
        notes.push(
          `address ${ip} is claimed by ${have.containerId}/${have.ifName} and ${key.containerId}/${key.ifName}; kept for the first`,
        );
      }
      return;
    }
    pool.addresses[ip] = { containerId: key.containerId, ifName: key.ifName };
    held.push(`${ip} ${key.containerId}/${key.ifName}`);
  }
  for (const ep of Object.values(state.endpoints)) {
    const net = state.networks[ep.network];
    for (const cidr of ep.addresses) {
      const ip = stripPrefix(cidr);
      if (!isIpv4(ip)) continue;
      const subnet = net !== undefined && inSubnet(ip, net.subnet)
        ? net.subnet
        : Object.keys(pools).find((s) => inSubnet(ip, s));
      hold(ip, subnet, ep);
    }
  }
  for (const x of options.extra ?? []) {
    hold(x.ip, pools[x.subnet] === undefined ? undefined : x.subnet, x);
  }
  for (const pool of Object.values(pools)) {
    const sorted: PoolState["addresses"] = {};
    for (const ip of Object.keys(pool.addresses).sort(byIp)) {
      const rec = pool.addresses[ip];
      if (rec !== undefined) sorted[ip] = rec;
    }
    pool.addresses = sorted;
  }
  return {
    ipam: {
      version: IPAM_STATE_VERSION,
      lastRefresh: 0,
      bootId: "",
      pools,
    },
    held,
    notes,
  };
}

/**
 * Whether an IPv4 address lies in a subnet.
 *
 * @param ip The address.
 * @param subnet The CIDR.
 * @returns True when inside.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ipInSubnet } from "./rebuild.ts";
 * assert.ok(ipInSubnet("10.0.0.5", "10.0.0.0/24"));
 * assert.ok(!ipInSubnet("10.0.1.5", "10.0.0.0/24"));
 * ```
 */
export function ipInSubnet(ip: string, subnet: string): boolean {
  return inSubnet(ip, subnet);
}
