/**
 * The memory of the warm pool's NIC changes that the source does not show
 * yet (#16). The warm pool changes a NIC through ARM, and the wireserver
 * and IMDS show the change only later: a refresh in between would give
 * back as free an address the warm pool withdrew before removing it (a pod
 * could get an address the NIC loses), or drop one the warm pool just
 * added. So `syncNic` remembers what it withdrew and added, per NIC, in
 * the state (a plugin process without the agent honours it too), and a
 * refresh follows the memory for each address until
 * {@link NIC_CHANGE_TTL_MS} passes (an expiry more than that ahead, after
 * the clock went back, counts as passed); an addition is also forgotten
 * once the source lists it. Pure: no I/O.
 *
 * @module
 */
import {
  azureMac,
  ipv4CidrContains,
  isIpv4,
  looksLikeIpv6,
  parseIpv4,
  parseIpv4Cidr,
} from "@vnet/address";
import type { IpamState, NicChanges } from "./state.ts";

/** How long a NIC change is remembered at most, in ms (5 minutes). */
export const NIC_CHANGE_TTL_MS = 300_000;

/** Options of the functions of this module. */
export interface NicChangeOptions {
  /** The current time, epoch ms. */
  readonly now: number;
}

/** What a source reports for one pool, as {@link followNicChanges} reads it. */
export interface ReportedPool {
  readonly subnet: string;
  readonly macAddress: string;
  readonly addresses: readonly string[];
}

type Expiries = Record<string, number>;

/**
 * The entries of `map` that have not expired, or undefined when none. An
 * entry whose expiry lies more than {@link NIC_CHANGE_TTL_MS} ahead counts
 * as expired: the wall clock went back (NTP step, VM restore), and without
 * the bound the memory would last that step plus the TTL.
 */
function live(
  map: Readonly<Expiries> | undefined,
  now: number,
): Expiries | undefined {
  const out: Expiries = {};
  for (const [ip, until] of Object.entries(map ?? {})) {
    if (until > now && until - now <= NIC_CHANGE_TTL_MS) out[ip] = until;
  }
  return Object.keys(out).length === 0 ? undefined : out;
}

/** `changes` without empty parts; undefined when nothing is left. */
function compact(
  removed: Expiries | undefined,
  added: Expiries | undefined,
): NicChanges | undefined {
  if (removed === undefined && added === undefined) return undefined;
  return {
    ...(removed === undefined ? {} : { removed }),
    ...(added === undefined ? {} : { added }),
  };
}

/** Sets `state.nicChanges` to `byMac`, or removes the field when empty. */
function store(state: IpamState, byMac: Record<string, NicChanges>): void {
  if (Object.keys(byMac).length === 0) delete state.nicChanges;
  else state.nicChanges = byMac;
}

/**
 * Remembers what `syncNic` changed on a NIC: `removed` addresses stay out
 * of its pools and `added` ones stay in, whatever a refresh says, for
 * {@link NIC_CHANGE_TTL_MS}. An address changed again takes its latest
 * change; expired entries are forgotten. Replaces `state.nicChanges`, never
 * edits it.
 *
 * @param state The state, changed in place.
 * @param change The NIC's MAC (any form) and the addresses added and removed.
 * @param options The current time.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { recordNicChanges } from "./nic_changes.ts";
 * import { emptyIpamState } from "./state.ts";
 * const state = emptyIpamState("b");
 * recordNicChanges(state, {
 *   macAddress: "00-0D-3A-F9-DC-A6", added: [], removed: ["10.0.0.6"],
 * }, { now: 1_000 });
 * assert.deepEqual(state.nicChanges, {
 *   "000d3af9dca6": { removed: { "10.0.0.6": 301_000 } },
 * });
 * ```
 */
export function recordNicChanges(
  state: IpamState,
  change: {
    macAddress: string;
    added: readonly string[];
    removed: readonly string[];
  },
  options: NicChangeOptions,
): void {
  const { now } = options;
  const mac = azureMac(change.macAddress);
  const byMac: Record<string, NicChanges> = {};
  for (const [m, c] of Object.entries(state.nicChanges ?? {})) {
    const kept = compact(live(c.removed, now), live(c.added, now));
    if (kept !== undefined) byMac[m] = kept;
  }
  const until = now + NIC_CHANGE_TTL_MS;
  const removed: Expiries = { ...byMac[mac]?.removed };
  const added: Expiries = { ...byMac[mac]?.added };
  for (const ip of change.removed) {
    removed[ip] = until;
    delete added[ip];
  }
  for (const ip of change.added) {
    added[ip] = until;
    delete removed[ip];
  }
  const mine = compact(live(removed, now), live(added, now));
  if (mine === undefined) delete byMac[mac];
  else byMac[mac] = mine;
  store(state, byMac);
}

/**
 * What a refresh should take for each pool: the source's addresses without
 * those the warm pool withdrew and with those it added, while remembered
 * (IPv4 pools, matched by MAC and subnet). Forgets what expired and the
 * additions the source now lists, in `state.nicChanges` (replaced);
 * withdrawals stay until they expire, so that an older snapshot merged
 * after a newer one does not free a withdrawn address again.
 *
 * @param state The state, whose memory is updated in place.
 * @param pools What the source reports.
 * @param options The current time.
 * @returns The addresses to take, one list per pool, in the same order.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { followNicChanges } from "./nic_changes.ts";
 * import { emptyIpamState } from "./state.ts";
 * const state = emptyIpamState("b");
 * state.nicChanges = { "000d3af9dca6": {
 *   removed: { "10.0.0.6": 9_000 }, added: { "10.0.0.9": 9_000 } } };
 * const got = followNicChanges(state, [{ subnet: "10.0.0.0/24",
 *   macAddress: "000d3af9dca6", addresses: ["10.0.0.5", "10.0.0.6"] }],
 *   { now: 1_000 });
 * assert.deepEqual(got, [["10.0.0.5", "10.0.0.9"]]);
 * ```
 */
export function followNicChanges(
  state: IpamState,
  pools: readonly ReportedPool[],
  options: NicChangeOptions,
): string[][] {
  const { now } = options;
  const memory: Record<string, { removed: Expiries; added: Expiries }> = {};
  for (const [mac, c] of Object.entries(state.nicChanges ?? {})) {
    memory[mac] = {
      removed: live(c.removed, now) ?? {},
      added: live(c.added, now) ?? {},
    };
  }
  const out = pools.map((pool) => {
    const nic = memory[pool.macAddress];
    if (nic === undefined || looksLikeIpv6(pool.subnet)) {
      return [...pool.addresses];
    }
    const cidr = parseIpv4Cidr(pool.subnet);
    const inPool = (ip: string) =>
      isIpv4(ip) && ipv4CidrContains(cidr, parseIpv4(ip));
    const reported = new Set(pool.addresses);
    // A withdrawal is kept until it expires, even once the source agrees:
    // a slower, older snapshot (another process's query) merged after a
    // newer one may still list the address, and must not free it again.
    const take = pool.addresses.filter((ip) => nic.removed[ip] === undefined);
    // An addition is forgotten once the source lists it: kept, it would
    // hand out as free an address that left the NIC some other way (not
    // through `syncNic`), while an older snapshot that does not list it yet
    // only drops a free address until the next refresh.
    for (const ip of Object.keys(nic.added)) {
      if (!inPool(ip)) continue;
      if (reported.has(ip)) delete nic.added[ip];
      else take.push(ip);
    }
    return take;
  });
  const byMac: Record<string, NicChanges> = {};
  for (const [mac, c] of Object.entries(memory)) {
    const kept = compact(live(c.removed, now), live(c.added, now));
    if (kept !== undefined) byMac[mac] = kept;
  }
  store(state, byMac);
  return out;
}
