/**
 * Address allocation over the IPAM state: reserve, find, release and
 * garbage-collect, keyed by (container id, ifname). Pure: the state is
 * mutated in place and the caller saves it.
 *
 * @module
 */
import { CniError, CODES, PLUGIN_CODES } from "@vnet/cni";
import {
  formatIpv4,
  formatIpv4Cidr,
  ipv4Broadcast,
  ipv4Gateway,
  isIpv4,
  parseIpv4,
  parseIpv4Cidr,
  stripPrefix,
} from "@vnet/address";
import { poolUsage } from "./pool.ts";
import type { IpamState, PoolState } from "./state.ts";

/** The key of a reservation. */
export interface AttachmentKey {
  /** The full `CNI_CONTAINERID`. */
  readonly containerId: string;
  /** `CNI_IFNAME`. */
  readonly ifName: string;
}

/** An address held by an attachment. */
export interface Allocation {
  /** The pool it belongs to. */
  readonly pool: PoolState;
  /** The dotted quad. */
  readonly ip: string;
}

/** What to allocate. */
export interface AllocationRequest extends AttachmentKey {
  /** A specific address (an optional `/prefix` is ignored). */
  readonly requestedIp?: string | undefined;
  /** Restrict to the pool of this subnet CIDR (`ipam.subnet`). */
  readonly subnet?: string | undefined;
  /** The network name recorded with the reservation (config `name`). */
  readonly network?: string | undefined;
}

/**
 * Options of {@link gcReservations}: the calling network. Only its
 * reservations, and those recorded without a network, are collected.
 * Default: every reservation.
 */
export type GcOptions = ReleaseOptions;

function holds(
  rec: { containerId?: string; ifName?: string },
  key: AttachmentKey,
): boolean {
  return rec.containerId === key.containerId &&
    (rec.ifName ?? "") === key.ifName;
}

/**
 * Finds the address an attachment holds.
 *
 * @param state The state.
 * @param key Container id and ifname.
 * @returns The allocation, or `undefined`.
 */
export function findReservation(
  state: IpamState | undefined,
  key: AttachmentKey,
): Allocation | undefined {
  for (const pool of Object.values(state?.pools ?? {})) {
    for (const [ip, rec] of Object.entries(pool.addresses)) {
      if (holds(rec, key)) return { pool, ip };
    }
  }
  return undefined;
}

/** Pools in preference order: priority first (secondary NICs), then subnet. */
function orderedPools(state: IpamState, subnet?: string): PoolState[] {
  let pools = Object.values(state.pools);
  if (subnet !== undefined) {
    let want: string;
    try {
      want = formatIpv4Cidr(parseIpv4Cidr(subnet));
    } catch (err) {
      throw new CniError(
        CODES.invalidConfig,
        `Invalid ipam.subnet "${subnet}"`,
        { cause: err },
      );
    }
    pools = pools.filter((p) => p.subnet === want);
    if (pools.length === 0) {
      throw new CniError(
        PLUGIN_CODES.poolExhausted,
        `No address pool for subnet ${want}; pools: ${
          Object.keys(state.pools).join(", ") || "none"
        }`,
      );
    }
  }
  return pools.sort((a, b) =>
    b.priority - a.priority ||
    parseIpv4Cidr(a.subnet).network - parseIpv4Cidr(b.subnet).network
  );
}

/**
 * Tells which addresses `pool` may hand out (free, not stale, not its
 * network, broadcast, gateway or a primary IP); the subnet is parsed once
 * per pool, not once per address.
 */
function allocatableIn(pool: PoolState): (ip: string) => number | undefined {
  const cidr = parseIpv4Cidr(pool.subnet);
  const never = new Set([
    cidr.network,
    ipv4Broadcast(cidr),
    ipv4Gateway(cidr),
  ]);
  const primary = new Set(pool.primaryIps);
  return (ip) => {
    const rec = pool.addresses[ip];
    if (rec === undefined || rec.containerId !== undefined || rec.stale) {
      return undefined;
    }
    const n = parseIpv4(ip);
    return never.has(n) || primary.has(ip) ? undefined : n;
  };
}

/**
 * Reserves an address for an attachment, in place.
 *
 * An attachment that already holds an address gets it again (ADD retry). A
 * requested address is honoured when free. Otherwise the lowest free
 * address of the first pool (secondary NICs first, then by subnet) that has
 * one. The NIC's primary addresses, network, broadcast and gateway are never
 * handed out.
 *
 * @param state The state (mutated).
 * @param request Key, requested address and subnet.
 * @returns The allocation.
 * @throws {CniError} 100 when no pool has a free address; 107 when the
 * requested address is unknown, held by another attachment, or differs from
 * the one this attachment holds; 7 for a bad `subnet` or address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocate } from "./allocator.ts";
 * const state = { version: 1 as const, lastRefresh: 0, bootId: "", pools: {
 *   "10.1.0.0/24": { subnet: "10.1.0.0/24", gateway: "10.1.0.1",
 *     macAddress: "*", priority: 0, primaryIps: ["10.1.0.4"],
 *     addresses: { "10.1.0.6": {}, "10.1.0.5": {} } } } };
 * const a = allocate(state, { containerId: "c1", ifName: "eth0" });
 * assert.equal(a.ip, "10.1.0.5");
 * ```
 */
export function allocate(
  state: IpamState,
  request: AllocationRequest,
): Allocation {
  const key = { containerId: request.containerId, ifName: request.ifName };
  const record = request.network === undefined
    ? { ...key }
    : { ...key, network: request.network };
  const existing = findReservation(state, key);
  const wanted = request.requestedIp === undefined
    ? undefined
    : stripPrefix(request.requestedIp);
  if (wanted !== undefined && !isIpv4(wanted)) {
    throw new CniError(
      CODES.invalidConfig,
      `Invalid requested address "${request.requestedIp}"`,
    );
  }
  if (existing !== undefined) {
    if (wanted !== undefined && wanted !== existing.ip) {
      throw new CniError(
        PLUGIN_CODES.addressUnavailable,
        `Cannot reserve requested address "${wanted}": container "${key.containerId}" interface "${key.ifName}" already holds "${existing.ip}"`,
      );
    }
    return existing;
  }
  const pools = orderedPools(state, request.subnet);
  if (wanted !== undefined) {
    const pool = pools.find((p) => p.addresses[wanted] !== undefined);
    if (pool === undefined) {
      throw new CniError(
        PLUGIN_CODES.addressUnavailable,
        `Cannot reserve requested address "${wanted}": not in any address pool`,
      );
    }
    if (allocatableIn(pool)(wanted) === undefined) {
      const rec = pool.addresses[wanted];
      throw new CniError(
        PLUGIN_CODES.addressUnavailable,
        `Cannot reserve requested address "${wanted}": ${
          rec?.containerId === undefined
            ? "no longer on the NIC"
            : `in use by container "${rec.containerId}"`
        }`,
      );
    }
    pool.addresses[wanted] = record;
    return { pool, ip: wanted };
  }
  for (const pool of pools) {
    const allocatable = allocatableIn(pool);
    let best: number | undefined;
    for (const ip of Object.keys(pool.addresses)) {
      const n = allocatable(ip);
      if (n !== undefined && (best === undefined || n < best)) best = n;
    }
    if (best !== undefined) {
      const ip = formatIpv4(best);
      pool.addresses[ip] = record;
      return { pool, ip };
    }
  }
  throw exhausted(pools);
}

function exhausted(pools: readonly PoolState[]): CniError {
  if (pools.length === 0) {
    return new CniError(
      PLUGIN_CODES.poolExhausted,
      "No free address: no address pool (no NIC of this host reported secondary addresses)",
    );
  }
  const parts = pools.map((p) => {
    const u = poolUsage(p);
    return `subnet ${p.subnet}: ${u.used} of ${u.total} in use`;
  });
  return new CniError(
    PLUGIN_CODES.poolExhausted,
    `No free address in ${parts.join("; ")}`,
  );
}

/** Options of {@link release} and {@link reservedBy}. */
export interface ReleaseOptions {
  /**
   * The calling network: a reservation recorded for another network is not
   * its to touch (a DEL whose config names another network). Records
   * without a network match any caller.
   */
  readonly network?: string | undefined;
}

function ownedBy(
  rec: { network?: string },
  options: ReleaseOptions,
): boolean {
  return options.network === undefined || rec.network === undefined ||
    rec.network === options.network;
}

/**
 * The addresses an attachment holds for the calling network, without
 * changing anything.
 *
 * @param state The state, or undefined when none exists.
 * @param key Container id and ifname.
 * @param options The calling network.
 * @returns The allocations (empty when none).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocate, reservedBy } from "./allocator.ts";
 * const state = { version: 1 as const, lastRefresh: 0, bootId: "", pools: {
 *   "10.1.0.0/24": { subnet: "10.1.0.0/24", gateway: "10.1.0.1",
 *     macAddress: "*", priority: 0, primaryIps: [],
 *     addresses: { "10.1.0.5": {} } } } };
 * const key = { containerId: "a", ifName: "eth0" };
 * allocate(state, { ...key, network: "blue" });
 * assert.equal(reservedBy(state, key, { network: "blue" })[0]?.ip, "10.1.0.5");
 * assert.deepEqual(reservedBy(state, key, { network: "red" }), []);
 * ```
 */
export function reservedBy(
  state: IpamState | undefined,
  key: AttachmentKey,
  options: ReleaseOptions = {},
): Allocation[] {
  const out: Allocation[] = [];
  for (const pool of Object.values(state?.pools ?? {})) {
    for (const [ip, rec] of Object.entries(pool.addresses)) {
      if (holds(rec, key) && ownedBy(rec, options)) out.push({ pool, ip });
    }
  }
  return out;
}

/**
 * Releases every address an attachment holds, in place. Idempotent: an
 * unknown attachment releases nothing. A stale address is deleted, and a
 * pool left empty with it. With `options.network`, another network's
 * reservation of the same key is left alone.
 *
 * @param state The state (mutated).
 * @param key Container id and ifname.
 * @param options The calling network.
 * @returns The released addresses.
 */
export function release(
  state: IpamState,
  key: AttachmentKey,
  options: ReleaseOptions = {},
): string[] {
  const out: string[] = [];
  for (const [subnet, pool] of Object.entries(state.pools)) {
    for (const [ip, rec] of Object.entries(pool.addresses)) {
      if (!holds(rec, key) || !ownedBy(rec, options)) continue;
      out.push(ip);
      if (rec.stale) delete pool.addresses[ip];
      else pool.addresses[ip] = {};
    }
    if (Object.keys(pool.addresses).length === 0 && out.length > 0) {
      delete state.pools[subnet];
    }
  }
  return out;
}

/**
 * Releases every reservation whose attachment is not in `valid`, in place.
 * The state is shared by every network using this IPAM, so with
 * `options.network` only that network's reservations (and those recorded
 * without a network) are candidates: the valid list names one network's
 * attachments only.
 *
 * @param state The state (mutated).
 * @param valid The attachments to keep.
 * @param options The calling network.
 * @returns The released reservations.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocate, gcReservations } from "./allocator.ts";
 * const state = { version: 1 as const, lastRefresh: 0, bootId: "", pools: {
 *   "10.1.0.0/24": { subnet: "10.1.0.0/24", gateway: "10.1.0.1",
 *     macAddress: "*", priority: 0, primaryIps: [],
 *     addresses: { "10.1.0.5": {}, "10.1.0.6": {} } } } };
 * allocate(state, { containerId: "a", ifName: "eth0", network: "blue" });
 * allocate(state, { containerId: "b", ifName: "eth0", network: "red" });
 * const dropped = gcReservations(state, [], { network: "blue" });
 * assert.deepEqual(dropped, [{ containerId: "a", ifName: "eth0" }]);
 * ```
 */
export function gcReservations(
  state: IpamState,
  valid: readonly AttachmentKey[],
  options: GcOptions = {},
): AttachmentKey[] {
  const keep = new Set(valid.map((k) => `${k.containerId}\0${k.ifName}`));
  const drop = new Map<string, AttachmentKey>();
  for (const pool of Object.values(state.pools)) {
    for (const rec of Object.values(pool.addresses)) {
      if (rec.containerId === undefined || !ownedBy(rec, options)) continue;
      const key = { containerId: rec.containerId, ifName: rec.ifName ?? "" };
      const id = `${key.containerId}\0${key.ifName}`;
      if (!keep.has(id)) drop.set(id, key);
    }
  }
  for (const key of drop.values()) release(state, key, options);
  return [...drop.values()];
}
