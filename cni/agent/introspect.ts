/**
 * The agent's introspection documents (#16): `GET /v1/endpoints` and
 * `GET /v1/pool`, built from the state files (unlocked reads: writes are
 * atomic renames) so they show what the plugins and the agent share.
 *
 * @module
 */
import type { AzureVnetState } from "@vnet/azure-vnet";
import type { AddressRecord, IpamState } from "@vnet/ipam";

/** One endpoint of `GET /v1/endpoints`. */
export interface EndpointView {
  readonly network: string;
  readonly containerId: string;
  readonly ifName: string;
  /** The pod's address (CIDR), the first of `addresses`. */
  readonly address: string | null;
  readonly addresses: readonly string[];
  /** The pod interface's MAC, kernel form. */
  readonly mac: string;
  readonly hostVeth: string;
  readonly netns: string;
  /**
   * Seconds since this agent answered the endpoint's ADD; null for an
   * endpoint added before the agent started or without it (the state file
   * records no creation time).
   */
  readonly ageSeconds: number | null;
}

/** One address of `GET /v1/pool`. */
export interface AddressView {
  readonly address: string;
  /** `in_use`, `free` or `stale` (held, no longer on the NIC). */
  readonly state: "in_use" | "free" | "stale";
  readonly containerId?: string;
  readonly ifName?: string;
  readonly network?: string;
  readonly pod?: string;
  /** Sticky (#16): the pod this free address is remembered for. */
  readonly lastPod?: string;
  /** Sticky (#16): when `lastPod` released it, epoch ms. */
  readonly releasedAt?: number;
}

/**
 * The state of one address record: `stale` (held, no longer on the NIC),
 * `in_use` (held) or `free`.
 *
 * @param rec The record.
 * @returns Its state.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { addressStateOf } from "./introspect.ts";
 * assert.equal(addressStateOf({ containerId: "c" }), "in_use");
 * assert.equal(addressStateOf({ lastPod: "n/p", releasedAt: 1 }), "free");
 * ```
 */
export function addressStateOf(rec: AddressRecord): AddressView["state"] {
  if (rec.stale === true) return "stale";
  return rec.containerId === undefined ? "free" : "in_use";
}

/** One pool of `GET /v1/pool`. */
export interface PoolView {
  readonly subnet: string;
  readonly gateway: string;
  readonly ifName: string | null;
  readonly macAddress: string;
  readonly primaryIps: readonly string[];
  readonly counts: Record<AddressView["state"], number>;
  readonly addresses: readonly AddressView[];
}

/** The document of `GET /v1/pool`. */
export interface PoolDocument {
  /** Epoch ms of the last source refresh; null without state. */
  readonly lastRefresh: number | null;
  readonly pools: readonly PoolView[];
}

/**
 * The pool document of an IPAM state.
 *
 * @param state The state, or undefined when none exists.
 * @returns Pools in subnet order, addresses in state order.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { poolDocument } from "./introspect.ts";
 * assert.deepEqual(poolDocument(undefined), { lastRefresh: null, pools: [] });
 * ```
 */
export function poolDocument(state: IpamState | undefined): PoolDocument {
  if (state === undefined) return { lastRefresh: null, pools: [] };
  const pools = Object.values(state.pools).map((p): PoolView => {
    const counts = { "in_use": 0, free: 0, stale: 0 };
    const addresses = Object.entries(p.addresses).map(([address, rec]) => {
      const s = addressStateOf(rec);
      counts[s]++;
      return {
        address,
        state: s,
        ...(rec.containerId === undefined
          ? {}
          : { containerId: rec.containerId }),
        ...(rec.ifName === undefined ? {} : { ifName: rec.ifName }),
        ...(rec.network === undefined ? {} : { network: rec.network }),
        ...(rec.pod === undefined ? {} : { pod: rec.pod }),
        ...(rec.lastPod === undefined ? {} : { lastPod: rec.lastPod }),
        ...(rec.releasedAt === undefined ? {} : { releasedAt: rec.releasedAt }),
      };
    });
    return {
      subnet: p.subnet,
      gateway: p.gateway,
      ifName: p.ifName ?? null,
      macAddress: p.macAddress,
      primaryIps: [...p.primaryIps],
      counts,
      addresses,
    };
  });
  return { lastRefresh: state.lastRefresh, pools };
}

/**
 * The endpoints document of an azure-vnet state.
 *
 * @param state The state.
 * @param ages When this agent answered each endpoint's ADD (epoch ms, by
 * `containerId/ifName`), and the time now.
 * @returns The endpoints, sorted by network, container and ifname.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { endpointsDocument } from "./introspect.ts";
 * const state = { version: 1, networks: {}, endpoints: {} };
 * assert.deepEqual(endpointsDocument(state, { added: new Map(), now: 0 }), []);
 * ```
 */
export function endpointsDocument(
  state: AzureVnetState,
  ages: { added: ReadonlyMap<string, number>; now: number },
): EndpointView[] {
  return Object.values(state.endpoints)
    .map((e) => {
      const added = ages.added.get(`${e.containerId}/${e.ifName}`);
      return {
        network: e.network,
        containerId: e.containerId,
        ifName: e.ifName,
        address: e.addresses[0] ?? null,
        addresses: [...e.addresses],
        mac: e.podMac,
        hostVeth: e.hostVeth,
        netns: e.netns,
        ageSeconds: added === undefined
          ? null
          : Math.max(0, Math.round((ages.now - added) / 1000)),
      };
    })
    .sort((a, b) =>
      a.network.localeCompare(b.network) ||
      a.containerId.localeCompare(b.containerId) ||
      a.ifName.localeCompare(b.ifName)
    );
}
