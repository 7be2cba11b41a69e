/**
 * Pools: building them from what a source reports, and merging a fresh view
 * into the persisted state. Pure: no I/O.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { HostInterface } from "@vnet/azure";
import {
  azureMac,
  compareIps,
  contains,
  formatIpv4,
  formatIpv4Cidr,
  host,
  ipFamily,
  ipv4Broadcast,
  ipv4CidrContains,
  ipv4Gateway,
  isIpv4,
  looksLikeIpv6,
  network,
  networkOf,
  normalizeIp,
  parseIpv4,
  parseIpv4Cidr,
} from "@vnet/address";
import { followNicChanges, recordNicChanges } from "./nic_changes.ts";
import type { AddressRecord, IpamState, PoolState } from "./state.ts";

const log = getLogger(["azure-vnet-ipam", "pool"]);

/** A host link as the IPAM sees it: name and normalised MAC. */
export interface HostLink {
  /** The link name, for example `eth0`. */
  readonly name: string;
  /** 12 lower-case hex digits. */
  readonly mac: string;
  /**
   * The addresses the host holds on it. No pool hands one out, whether or
   * not the source marks it primary (the wireserver's `IsPrimary` is
   * documented for IPv4 only).
   */
  readonly addresses?: readonly string[];
}

/** What a source says one pool should contain. */
export interface PoolSpec {
  readonly subnet: string;
  readonly gateway: string;
  readonly ifName?: string;
  readonly macAddress: string;
  readonly priority: number;
  readonly primaryIps: readonly string[];
  /** Allocatable addresses (primary, network, broadcast, gateway removed). */
  readonly addresses: readonly string[];
}

/** Options of {@link poolSpecsFromInterfaces}. */
export interface PoolSpecOptions {
  /**
   * Config `master`: the wildcard MAC `*` binds to this link, and a NIC
   * with this link's MAC records its name (not the bridge's). Every NIC
   * still becomes pools: the state is shared by the networks of all NICs,
   * and master picks among the pools at allocation (`master.ts`).
   */
  master?: string;
  /**
   * Skip MAC matching entirely (static shorthand): every interface becomes
   * pools, bound to `master` when given.
   */
  unbound?: boolean;
}

/** The canonical text of an address, or undefined when it is none. */
function canonical(address: string): string | undefined {
  try {
    return normalizeIp(address);
  } catch {
    return undefined;
  }
}

/** Every address the host holds, on any link, in canonical text. */
function hostAddresses(links: readonly HostLink[]): Set<string> {
  return new Set(
    links.flatMap((l) => (l.addresses ?? []).map(canonical))
      .filter((a) => a !== undefined),
  );
}

/** True for a MAC that no real NIC has (loopback, tunnels). */
function isNullMac(mac: string): boolean {
  return mac === "000000000000";
}

/**
 * Turns a source's interface list into pool specs, matching each NIC to a
 * host link by MAC (normalised). Unmatched NICs are logged and skipped.
 * `"*"` binds to `master`, or to the only candidate link (non-null MAC).
 * `master` does not drop the other NICs: a refresh by one network must
 * not take the pools of another network's NIC out of the shared state.
 *
 * @param interfaces What the wireserver, IMDS or static config reports.
 * @param links The host's links.
 * @param options `master` restriction.
 * @returns One spec per subnet (duplicate prefixes: first wins).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { poolSpecsFromInterfaces } from "./pool.ts";
 * const specs = poolSpecsFromInterfaces([{
 *   macAddress: "000d3af9dca6", isPrimary: true,
 *   subnets: [{ prefix: "10.240.0.0/16", addresses: [
 *     { address: "10.240.0.4", isPrimary: true },
 *     { address: "10.240.0.5", isPrimary: false },
 *   ] }],
 * }], [{ name: "eth0", mac: "000d3af9dca6" }]);
 * assert.deepEqual(specs[0]?.addresses, ["10.240.0.5"]);
 * assert.equal(specs[0]?.gateway, "10.240.0.1");
 * ```
 */
export function poolSpecsFromInterfaces(
  interfaces: readonly HostInterface[],
  links: readonly HostLink[],
  options: PoolSpecOptions = {},
): PoolSpec[] {
  const { master } = options;
  // Links without a real MAC (loopback, tunnels) are no candidates, but an
  // explicit master is taken as configured.
  const masterLink = master === undefined
    ? undefined
    : links.find((l) => l.name === master);
  const candidates = links.filter((l) => !isNullMac(l.mac));
  const held = hostAddresses(links);
  const specs = new Map<string, PoolSpec>();
  for (const nic of interfaces) {
    let mac: string;
    try {
      mac = azureMac(nic.macAddress, { wildcard: true });
    } catch {
      log.warn("Skipping interface with bad MAC {mac}", {
        mac: nic.macAddress,
      });
      continue;
    }
    let link: HostLink | undefined;
    if (options.unbound === true) {
      link = master === undefined ? undefined : { name: master, mac };
    } else if (mac === "*") {
      link = master === undefined
        ? (candidates.length === 1 ? candidates[0] : undefined)
        : masterLink;
      if (link === undefined) {
        log.warn("Skipping wildcard interface: {why}", {
          why: master === undefined
            ? `${candidates.length} candidate links, set master`
            : `no host link "${master}" (master)`,
        });
        continue;
      }
    } else {
      // The bridge carries its master's MAC: name the configured master.
      link = masterLink?.mac === mac
        ? masterLink
        : candidates.find((l) => l.mac === mac);
      if (link === undefined) {
        log.info("Skipping interface {mac}: no matching host link", { mac });
        continue;
      }
    }
    for (const subnet of nic.subnets) {
      // The node's own addresses count as primary, so that the allocator,
      // the merge and the warm pool's NIC sync all leave them out.
      const addresses = subnet.addresses.map((a) =>
        held.has(canonical(a.address) ?? "") ? { ...a, isPrimary: true } : a
      );
      const spec = subnetSpec(subnet.prefix, addresses, {
        mac: link?.mac ?? mac,
        ifName: link?.name,
        priority: nic.isPrimary ? 0 : 1,
      });
      if (spec !== undefined && !specs.has(spec.subnet)) {
        specs.set(spec.subnet, spec);
      }
    }
  }
  return [...specs.values()];
}

function subnetSpec(
  prefix: string,
  addresses: readonly { address: string; isPrimary: boolean }[],
  nic: { mac: string; ifName: string | undefined; priority: number },
): PoolSpec | undefined {
  if (looksLikeIpv6(prefix)) return ipv6SubnetSpec(prefix, addresses, nic);
  let cidr;
  try {
    cidr = parseIpv4Cidr(prefix);
  } catch {
    log.warn("Skipping subnet with bad prefix {prefix}", { prefix });
    return undefined;
  }
  const reserved = new Set([
    cidr.network,
    ipv4Broadcast(cidr),
    ipv4Gateway(cidr),
  ]);
  const primaryIps: string[] = [];
  const free = new Set<number>();
  for (const a of addresses) {
    if (!isIpv4(a.address)) continue;
    const n = parseIpv4(a.address);
    if (!ipv4CidrContains(cidr, n)) {
      log.warn("Skipping address {address} outside {prefix}", {
        address: a.address,
        prefix,
      });
      continue;
    }
    if (a.isPrimary) primaryIps.push(formatIpv4(n));
    else if (!reserved.has(n)) free.add(n);
  }
  for (const p of primaryIps) free.delete(parseIpv4(p));
  const spec: PoolSpec = {
    subnet: formatIpv4Cidr(cidr),
    gateway: formatIpv4(ipv4Gateway(cidr)),
    macAddress: nic.mac,
    priority: nic.priority,
    primaryIps,
    addresses: [...free].sort((a, b) => a - b).map(formatIpv4),
  };
  return nic.ifName === undefined ? spec : { ...spec, ifName: nic.ifName };
}

/**
 * An IPv6 subnet's pool: its network address and host 1 (the gateway) are
 * never handed out, and there is no broadcast; addresses are kept in
 * canonical text (RFC 5952), lowest first.
 */
function ipv6SubnetSpec(
  prefix: string,
  addresses: readonly { address: string; isPrimary: boolean }[],
  nic: { mac: string; ifName: string | undefined; priority: number },
): PoolSpec | undefined {
  let subnet: string;
  try {
    subnet = networkOf(prefix);
  } catch {
    log.warn("Skipping subnet with bad prefix {prefix}", { prefix });
    return undefined;
  }
  const gateway = host(subnet, 1);
  const reserved = new Set([network(subnet), gateway]);
  const primaryIps: string[] = [];
  const free = new Set<string>();
  for (const a of addresses) {
    if (ipFamily(a.address) !== 6) continue;
    const ip = normalizeIp(a.address);
    if (!contains(subnet, ip)) {
      log.warn("Skipping address {address} outside {prefix}", {
        address: a.address,
        prefix,
      });
      continue;
    }
    if (a.isPrimary) primaryIps.push(ip);
    else if (!reserved.has(ip)) free.add(ip);
  }
  for (const p of primaryIps) free.delete(p);
  const spec: PoolSpec = {
    subnet,
    gateway,
    macAddress: nic.mac,
    priority: nic.priority,
    primaryIps,
    addresses: [...free].sort(compareIps),
  };
  return nic.ifName === undefined ? spec : { ...spec, ifName: nic.ifName };
}

/**
 * Merges a fresh source view into the state, in place (reference §1.5):
 * new pools and addresses are added at once; an address that vanished is
 * deleted when free, or kept and marked `stale` while held; an address seen
 * again loses `stale`; a pool left with no addresses is deleted. Pool
 * gateway, interface, MAC, priority and primary IPs follow the source.
 * What the warm pool withdrew from or added to a NIC and the source does
 * not show yet (`nicChanges`, `nic_changes.ts`) stays withdrawn until the
 * memory expires, or added until the source lists it or the memory expires.
 *
 * @param state The state to update.
 * @param specs The fresh view.
 * @param options The current time (epoch ms, default `Date.now()`), for
 * the memory of NIC changes.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { mergePools } from "./pool.ts";
 * import { emptyIpamState } from "./state.ts";
 * const state = emptyIpamState("boot");
 * mergePools(state, [{ subnet: "10.1.0.0/24", gateway: "10.1.0.1",
 *   macAddress: "*", priority: 0, primaryIps: [], addresses: ["10.1.0.5"] }]);
 * assert.deepEqual(state.pools["10.1.0.0/24"]?.addresses, { "10.1.0.5": {} });
 * ```
 */
export function mergePools(
  state: IpamState,
  specs: readonly PoolSpec[],
  options: { now?: number } = {},
): void {
  const seen = new Set<string>();
  const taken = followNicChanges(state, specs, {
    now: options.now ?? Date.now(),
  });
  for (const [i, spec] of specs.entries()) {
    seen.add(spec.subnet);
    const old = state.pools[spec.subnet];
    const pool: PoolState = {
      subnet: spec.subnet,
      gateway: spec.gateway,
      macAddress: spec.macAddress,
      priority: spec.priority,
      primaryIps: [...spec.primaryIps],
      addresses: {},
    };
    if (spec.ifName !== undefined) pool.ifName = spec.ifName;
    const addresses = taken[i] ?? spec.addresses;
    const fresh = new Set(addresses);
    for (const ip of addresses) {
      const rec = old?.addresses[ip];
      if (rec === undefined) pool.addresses[ip] = {};
      else if (rec.stale === undefined) {
        // The same record, not a copy: a frozen record's printed text is
        // reused when the state is written (#14).
        pool.addresses[ip] = rec;
      } else {
        const { stale: _stale, ...kept } = rec;
        pool.addresses[ip] = kept;
      }
    }
    for (const [ip, rec] of Object.entries(old?.addresses ?? {})) {
      if (!fresh.has(ip) && rec.containerId !== undefined) {
        pool.addresses[ip] = staleRecord(rec);
      }
    }
    pool.addresses = sortAddresses(pool.addresses);
    state.pools[spec.subnet] = pool;
  }
  for (const [key, pool] of Object.entries(state.pools)) {
    if (seen.has(key)) continue;
    const held: PoolState["addresses"] = {};
    for (const [ip, rec] of Object.entries(pool.addresses)) {
      if (rec.containerId !== undefined) held[ip] = staleRecord(rec);
    }
    if (Object.keys(held).length === 0) delete state.pools[key];
    else pool.addresses = held;
  }
}

/** The record marked stale (itself when it is already). */
function staleRecord(rec: AddressRecord): AddressRecord {
  return rec.stale === true ? rec : { ...rec, stale: true };
}

/** Returns the records ordered by address (stable, readable state files). */
function sortAddresses(
  addresses: PoolState["addresses"],
): PoolState["addresses"] {
  const out: PoolState["addresses"] = {};
  const keys = Object.keys(addresses).sort(compareIps);
  for (const k of keys) {
    const rec = addresses[k];
    if (rec !== undefined) out[k] = rec;
  }
  return out;
}

/** Usage counts of a pool. */
export interface PoolUsage {
  /** Addresses the pool can hand out (free or held). */
  readonly total: number;
  /** Addresses held. */
  readonly used: number;
}

/**
 * Counts a pool's held and total addresses.
 *
 * @param pool The pool.
 * @returns `{total, used}`.
 */
export function poolUsage(pool: PoolState): PoolUsage {
  let used = 0;
  let total = 0;
  for (const rec of Object.values(pool.addresses)) {
    total++;
    if (rec.containerId !== undefined) used++;
  }
  return { total, used };
}

/** What {@link syncNicAddresses} changed. */
export interface NicSync {
  /** Addresses now free in a pool that were not there. */
  readonly added: string[];
  /**
   * Free addresses dropped because the NIC no longer carries them, and
   * withdrawn addresses that no pool had yet: all kept out for a while.
   */
  readonly removed: string[];
}

/**
 * Makes the pools of one NIC (by MAC) carry exactly the NIC's secondary
 * addresses that fall in their subnet, as ARM reports them after a warm
 * pool update (#16): new ones become free records; free records the NIC no
 * longer has are dropped. Held, stale and primary addresses, and the
 * network, gateway and broadcast addresses, are never touched. What it
 * adds and removes is remembered in the state for a few minutes
 * (`recordNicChanges()`), so that a refresh from a source that lags ARM
 * does not undo it; so is each `withdrawn` address (one the warm pool is
 * about to remove) that no pod holds, whether a pool had it yet or not.
 * Pure; the caller saves.
 *
 * @param state The state, changed in place.
 * @param nic The NIC's MAC (any form), its secondary addresses, and those
 * withdrawn (leaving it; never taken even if listed).
 * @param options The current time (epoch ms, default `Date.now()`).
 * @returns The addresses added and removed.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { syncNicAddresses } from "./pool.ts";
 * const state = { version: 1 as const, lastRefresh: 1, bootId: "b", pools: {
 *   "10.0.0.0/24": { subnet: "10.0.0.0/24", gateway: "10.0.0.1",
 *     macAddress: "000d3af9dca6", priority: 0, primaryIps: ["10.0.0.4"],
 *     addresses: { "10.0.0.5": { containerId: "c" }, "10.0.0.6": {} } } } };
 * const out = syncNicAddresses(state,
 *   { macAddress: "00-0D-3A-F9-DC-A6", addresses: ["10.0.0.5", "10.0.0.7"] });
 * assert.deepEqual(out, { added: ["10.0.0.7"], removed: ["10.0.0.6"] });
 * ```
 */
export function syncNicAddresses(
  state: IpamState,
  nic: {
    macAddress: string;
    addresses: readonly string[];
    withdrawn?: readonly string[];
  },
  options: { now?: number } = {},
): NicSync {
  const mac = azureMac(nic.macAddress);
  const added: string[] = [];
  const removed: string[] = [];
  const withdrawn = new Set((nic.withdrawn ?? []).filter(isIpv4));
  const held = new Set<string>();
  for (const pool of Object.values(state.pools)) {
    // The warm pool syncs IPv4 only; IPv6 pools follow the source.
    if (pool.macAddress !== mac || looksLikeIpv6(pool.subnet)) continue;
    const cidr = parseIpv4Cidr(pool.subnet);
    const skip = new Set([
      cidr.network,
      ipv4Broadcast(cidr),
      ipv4Gateway(cidr),
      ...pool.primaryIps.map(parseIpv4),
    ]);
    for (const [ip, rec] of Object.entries(pool.addresses)) {
      if (rec.containerId !== undefined) held.add(ip);
    }
    const want = new Set(
      nic.addresses.filter((ip) => {
        if (!isIpv4(ip) || withdrawn.has(ip)) return false;
        const n = parseIpv4(ip);
        return ipv4CidrContains(cidr, n) && !skip.has(n);
      }),
    );
    for (const [ip, rec] of Object.entries(pool.addresses)) {
      if (want.has(ip) || rec.containerId !== undefined) continue;
      delete pool.addresses[ip];
      removed.push(ip);
    }
    for (const ip of want) {
      if (pool.addresses[ip] !== undefined) continue;
      pool.addresses[ip] = {};
      added.push(ip);
    }
    pool.addresses = sortAddresses(pool.addresses);
  }
  // Withdrawn addresses no pool had (the NIC got them after the last
  // refresh) stay out too; one a pod holds stays its own.
  for (const ip of withdrawn) {
    if (!held.has(ip) && !removed.includes(ip)) removed.push(ip);
  }
  const byIp = (a: string, b: string) => parseIpv4(a) - parseIpv4(b);
  if (added.length + removed.length > 0) {
    recordNicChanges(state, { macAddress: mac, added, removed }, {
      now: options.now ?? Date.now(),
    });
  }
  return { added: added.sort(byIp), removed: removed.sort(byIp) };
}
