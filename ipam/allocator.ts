/**
 * Address allocation over the IPAM state: reserve, find, release and
 * garbage-collect, keyed by (container id, ifname). Pure: the state is
 * mutated in place and the caller saves it.
 *
 * @module
 */
import { CniError, CODES, PLUGIN_CODES } from "@vnet/cni";
import {
  compareIps,
  formatIpv4Cidr,
  host,
  ipv4Broadcast,
  ipv4Gateway,
  isIpv4,
  looksLikeIpv6,
  network,
  networkOf,
  parseIpv4,
  parseIpv4Cidr,
  stripPrefix,
} from "@vnet/address";
import { describeMaster, onMaster } from "./master.ts";
import type { MasterNic } from "./master.ts";
import { poolUsage } from "./pool.ts";
import type { AddressRecord, IpamState, PoolState } from "./state.ts";

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
  /** The address (a dotted quad, or canonical IPv6 text). */
  readonly ip: string;
  /**
   * The free address's record this reservation replaced (a sticky
   * address's memory of its last pod), for a rollback; undefined when the
   * attachment already held the address.
   */
  readonly replaced?: AddressRecord;
}

/** An address family: 4 or 6. */
export type Family = 4 | 6;

/**
 * The family of a pool (or any CIDR or address): 6 when written as IPv6.
 *
 * @param subnet A pool's subnet.
 * @returns 4 or 6.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { familyOf } from "./allocator.ts";
 * assert.equal(familyOf("fd00::/64"), 6);
 * assert.equal(familyOf("10.0.0.0/24"), 4);
 * ```
 */
export function familyOf(subnet: string): Family {
  return looksLikeIpv6(subnet) ? 6 : 4;
}

/** What to allocate. */
export interface AllocationRequest extends AttachmentKey {
  /** A specific address (an optional `/prefix` is ignored). */
  readonly requestedIp?: string | undefined;
  /** Restrict to the pool of this subnet CIDR (`ipam.subnet`). */
  readonly subnet?: string | undefined;
  /** The network name recorded with the reservation (config `name`). */
  readonly network?: string | undefined;
  /**
   * The family to allocate (default 4). `requestedIp` and `subnet` apply
   * to their own family only.
   */
  readonly family?: Family | undefined;
  /** The pod, `namespace/name`; used and recorded only when `sticky`. */
  readonly pod?: string | undefined;
  /** Sticky addresses (#16): the cooldown and the current time. */
  readonly sticky?: StickyClock | undefined;
  /**
   * Config `master` (`master.ts`): only the pools of its NIC, by MAC, and
   * pools bound to no NIC serve, in both families. An address the
   * attachment already holds is returned wherever it is. Default: every
   * pool.
   */
  readonly master?: MasterNic | undefined;
}

/** What a sticky allocation needs: the cooldown and the time now. */
export interface StickyClock {
  /** How long a released address stays remembered for its pod, in ms. */
  readonly cooldownMs: number;
  /** The current time, epoch ms. */
  readonly now: number;
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
 * Finds the address of a family that an attachment holds.
 *
 * @param state The state.
 * @param key Container id and ifname.
 * @param options `family` (default 4).
 * @returns The allocation, or `undefined`.
 */
export function findReservation(
  state: IpamState | undefined,
  key: AttachmentKey,
  options: { family?: Family } = {},
): Allocation | undefined {
  const family = options.family ?? 4;
  for (const pool of Object.values(state?.pools ?? {})) {
    if (familyOf(pool.subnet) !== family) continue;
    for (const [ip, rec] of Object.entries(pool.addresses)) {
      if (holds(rec, key)) return { pool, ip };
    }
  }
  return undefined;
}

/** Pools in preference order: priority first (secondary NICs), then subnet. */
function orderedPools(
  state: IpamState,
  spec: { subnet: string | undefined; family: Family },
): PoolState[] {
  const { subnet, family } = spec;
  if (family === 6) {
    return orderedIpv6Pools(state, subnet);
  }
  let pools = Object.values(state.pools).filter((p) =>
    familyOf(p.subnet) === 4
  );
  if (subnet !== undefined && familyOf(subnet) === 4) {
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

/** The IPv6 pools in preference order; `subnet` only when it is IPv6. */
function orderedIpv6Pools(
  state: IpamState,
  subnet: string | undefined,
): PoolState[] {
  let want: string | undefined;
  if (subnet !== undefined && familyOf(subnet) === 6) {
    try {
      want = networkOf(subnet);
    } catch (err) {
      throw new CniError(
        CODES.invalidConfig,
        `Invalid IPv6 subnet "${subnet}"`,
        { cause: err },
      );
    }
  }
  return Object.values(state.pools).filter((p) =>
    familyOf(p.subnet) === 6 && (want === undefined || p.subnet === want)
  ).sort((a, b) =>
    b.priority - a.priority || compareIps(network(a.subnet), network(b.subnet))
  );
}

/** The pools an allocation may use, and those that master excluded. */
interface Candidates {
  /** In preference order, on master. */
  readonly pools: PoolState[];
  /** Of the family (and subnet) but on another NIC than master's. */
  readonly others: PoolState[];
  readonly master: MasterNic | undefined;
}

/**
 * The pools of a family (and subnet) in preference order, split by
 * master. A `subnet` whose pool is on another NIC than master's is code
 * 100, naming both.
 */
function candidatePools(
  state: IpamState,
  spec: {
    subnet: string | undefined;
    family: Family;
    master: MasterNic | undefined;
  },
): Candidates {
  const { master } = spec;
  const all = orderedPools(state, spec);
  const pools = all.filter((p) => onMaster(p, master));
  const others = all.filter((p) => !onMaster(p, master));
  const bySubnet = spec.subnet !== undefined &&
    familyOf(spec.subnet) === spec.family;
  const other = others[0];
  if (
    master !== undefined && bySubnet && pools.length === 0 &&
    other !== undefined
  ) {
    throw new CniError(
      PLUGIN_CODES.poolExhausted,
      `No address pool for subnet ${other.subnet} on ${
        describeMaster(master)
      }: its pool is on NIC ${other.macAddress}`,
    );
  }
  return { pools, others, master };
}

/** True when `ip` may be handed out from `pool`. */
function allocatable(pool: PoolState, ip: string): boolean {
  const rec = pool.addresses[ip];
  if (rec === undefined || rec.containerId !== undefined || rec.stale) {
    return false;
  }
  if (familyOf(pool.subnet) === 6) {
    return ip !== network(pool.subnet) && ip !== host(pool.subnet, 1) &&
      !pool.primaryIps.includes(ip);
  }
  const cidr = parseIpv4Cidr(pool.subnet);
  const n = parseIpv4(ip);
  return n !== cidr.network && n !== ipv4Broadcast(cidr) &&
    n !== ipv4Gateway(cidr) && !pool.primaryIps.includes(ip);
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
 * With `sticky` (#16) the reservation records the pod, and a pod gets the
 * address it released last (within the cooldown) again. An address that
 * another pod released within the cooldown is handed out only when nothing
 * else is free: the one whose cooldown ends first. A requested address is
 * honoured even when remembered for another pod.
 *
 * With `master` (`master.ts`) only the pools of its NIC (and pools bound to
 * no NIC) serve: a requested address or a `subnet` of another NIC's pool is
 * refused, and exhaustion names the other NICs' pools it did not use.
 *
 * @param state The state (mutated).
 * @param request Key, requested address, subnet and master.
 * @returns The allocation.
 * @throws {CniError} 100 when no pool has a free address; 107 when the
 * requested address is unknown, in another NIC's pool than master's, held
 * by another attachment, or differs from the one this attachment holds; 108
 * when master names no host link and only other NICs' pools exist; 7 for a
 * bad `subnet` or address.
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
  const pod = request.sticky === undefined ? undefined : request.pod;
  const record: AddressRecord = request.network === undefined
    ? { ...key }
    : { ...key, network: request.network };
  if (pod !== undefined) record.pod = pod;
  const family = request.family ?? 4;
  if (family === 6) return allocateIpv6(state, { key, record, request });
  const existing = findReservation(state, key);
  const wanted = request.requestedIp === undefined ||
      familyOf(request.requestedIp) === 6
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
  const candidates = candidatePools(state, {
    subnet: request.subnet,
    family,
    master: request.master,
  });
  const { pools } = candidates;
  if (wanted !== undefined) {
    const pool = pools.find((p) => p.addresses[wanted] !== undefined);
    const other = candidates.others.find((p) =>
      p.addresses[wanted] !== undefined
    );
    if (
      pool === undefined && other !== undefined &&
      request.master !== undefined
    ) {
      throw new CniError(
        PLUGIN_CODES.addressUnavailable,
        `Cannot reserve requested address "${wanted}": its pool ${other.subnet} is on NIC ${other.macAddress}, not on ${
          describeMaster(request.master)
        }`,
      );
    }
    if (pool === undefined) {
      throw new CniError(
        PLUGIN_CODES.addressUnavailable,
        `Cannot reserve requested address "${wanted}": not in any address pool`,
      );
    }
    if (!allocatable(pool, wanted)) {
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
    return take({ pool, ip: wanted }, record);
  }
  const free = chooseFree(pools, request.sticky, pod);
  if (free === undefined) throw exhausted(candidates);
  return take(free, record);
}

/** Records the reservation of a free address, keeping what it replaced. */
function take(free: Allocation, record: AddressRecord): Allocation {
  const replaced = free.pool.addresses[free.ip] ?? {};
  free.pool.addresses[free.ip] = { ...record };
  return { pool: free.pool, ip: free.ip, replaced };
}

/**
 * The free address a new reservation gets from `pools` (one family, in
 * order), whatever the family: with `sticky`, the address the pod
 * released last (within the cooldown); else the lowest free address of the
 * first pool that has one, passing over addresses remembered for other
 * pods; else another pod's remembered address, the one whose cooldown ends
 * first. Undefined when nothing is free.
 */
function chooseFree(
  pools: readonly PoolState[],
  sticky: StickyClock | undefined,
  pod: string | undefined,
): Allocation | undefined {
  if (sticky !== undefined && pod !== undefined) {
    const mine = pickRemembered(pools, sticky, (owner) => owner === pod);
    if (mine !== undefined) return mine;
  }
  for (const pool of pools) {
    let best: string | undefined;
    for (const ip of Object.keys(pool.addresses)) {
      if (!allocatable(pool, ip)) continue;
      if (
        sticky !== undefined &&
        rememberedFor(pool.addresses[ip], sticky) !== undefined
      ) continue;
      if (best === undefined || compareIps(ip, best) < 0) best = ip;
    }
    if (best !== undefined) return { pool, ip: best };
  }
  // Nothing else is free: another pod's remembered address.
  return sticky === undefined
    ? undefined
    : pickRemembered(pools, sticky, () => true, { oldest: true });
}

/**
 * The pod a free address is remembered for, while its cooldown runs
 * (#16); undefined when it is remembered for nobody.
 */
function rememberedFor(
  rec: AddressRecord | undefined,
  sticky: StickyClock,
): string | undefined {
  if (
    rec === undefined || typeof rec.lastPod !== "string" ||
    typeof rec.releasedAt !== "number"
  ) return undefined;
  return sticky.now - rec.releasedAt < sticky.cooldownMs
    ? rec.lastPod
    : undefined;
}

/**
 * The allocatable address remembered for a pod that `match` accepts: the
 * most recently released one (or, with `oldest`, the one released first),
 * then the lowest address, then the first pool.
 */
function pickRemembered(
  pools: readonly PoolState[],
  sticky: StickyClock,
  match: (pod: string) => boolean,
  options: { oldest?: boolean } = {},
): Allocation | undefined {
  let best: { pool: PoolState; ip: string; at: number } | undefined;
  for (const pool of pools) {
    for (const [ip, rec] of Object.entries(pool.addresses)) {
      const owner = rememberedFor(rec, sticky);
      if (owner === undefined || !match(owner) || !allocatable(pool, ip)) {
        continue;
      }
      const at = (rec.releasedAt ?? 0) * (options.oldest === true ? -1 : 1);
      if (
        best === undefined || at > best.at ||
        (at === best.at && compareIps(ip, best.ip) < 0)
      ) best = { pool, ip, at };
    }
  }
  return best === undefined ? undefined : { pool: best.pool, ip: best.ip };
}

/**
 * IPv6: the attachment's address again, else a free one as for IPv4
 * ({@link chooseFree}: sticky addresses included).
 */
function allocateIpv6(
  state: IpamState,
  spec: {
    key: AttachmentKey;
    record: AddressRecord;
    request: AllocationRequest;
  },
): Allocation {
  const existing = findReservation(state, spec.key, { family: 6 });
  if (existing !== undefined) return existing;
  const candidates = candidatePools(state, {
    subnet: spec.request.subnet,
    family: 6,
    master: spec.request.master,
  });
  const { sticky } = spec.request;
  const pod = sticky === undefined ? undefined : spec.request.pod;
  const free = chooseFree(candidates.pools, sticky, pod);
  if (free === undefined) throw exhausted(candidates);
  return take(free, spec.record);
}

/**
 * Whether the state has a pool of a family (with `master`: one that
 * serves under it).
 *
 * @param state The state.
 * @param family 4 or 6.
 * @param options Config `master`'s NIC.
 * @returns True when some pool's subnet is of that family.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { hasFamily } from "./allocator.ts";
 * const state = { version: 1 as const, lastRefresh: 0, bootId: "", pools: {
 *   "fd00::/64": { subnet: "fd00::/64", gateway: "fd00::1",
 *     macAddress: "000d3af9dc11", priority: 0, primaryIps: [],
 *     addresses: { "fd00::5": {} } } } };
 * assert.ok(hasFamily(state, 6));
 * assert.ok(!hasFamily(state, 6,
 *   { master: { name: "eth0", mac: "000d3af9dca6" } }));
 * ```
 */
export function hasFamily(
  state: IpamState,
  family: Family,
  options: { master?: MasterNic | undefined } = {},
): boolean {
  return Object.values(state.pools).some((p) =>
    familyOf(p.subnet) === family && onMaster(p, options.master)
  );
}

/**
 * The error of an allocation that found no free address: 100 naming the
 * pools' usage, and the pools of other NICs that master kept it from; 108
 * when master names no host link and only other NICs' pools exist.
 */
function exhausted(candidates: Candidates): CniError {
  const { pools, others, master } = candidates;
  const skipped = master === undefined || others.length === 0
    ? undefined
    : `Not used because of ${describeMaster(master)}: ${
      others.map((p) =>
        `subnet ${p.subnet} on NIC ${p.macAddress} (${
          Object.keys(p.addresses).filter((ip) => allocatable(p, ip)).length
        } free)`
      ).join("; ")
    }`;
  const details = skipped === undefined ? {} : { details: skipped };
  if (
    master !== undefined && master.mac === undefined &&
    skipped !== undefined
  ) {
    return new CniError(
      PLUGIN_CODES.masterNotFound,
      `Cannot find master "${master.name}": no host link of that name holds an address, so no NIC's pool serves it`,
      details,
    );
  }
  const note = master === undefined || skipped === undefined
    ? ""
    : `; pools of other NICs not used because of ${describeMaster(master)}`;
  if (pools.length === 0) {
    return new CniError(
      PLUGIN_CODES.poolExhausted,
      skipped === undefined
        ? "No free address: no address pool (no NIC of this host reported secondary addresses)"
        : `No free address: no address pool${note}`,
      details,
    );
  }
  const parts = pools.map((p) => {
    const u = poolUsage(p);
    return `subnet ${p.subnet}: ${u.used} of ${u.total} in use`;
  });
  return new CniError(
    PLUGIN_CODES.poolExhausted,
    `No free address in ${parts.join("; ")}${note}`,
    details,
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
  /**
   * The time of the release, epoch ms, recorded on a sticky address (one
   * whose record names its pod). Default `Date.now()`.
   */
  readonly now?: number | undefined;
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
      else if (rec.pod === undefined) pool.addresses[ip] = {};
      else {
        pool.addresses[ip] = {
          lastPod: rec.pod,
          releasedAt: options.now ?? Date.now(),
        };
      }
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
