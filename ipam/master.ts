/**
 * The config's top-level `master` at allocation: which pools belong to the
 * NIC of the host link it names. Networks on different NICs (master `eth0`
 * and master `eth1`) may share one state file, so an ADD takes addresses
 * only from its master's pools.
 *
 * A pool belongs to master when its MAC is the MAC of the host link named
 * `master` (both in the `azureMac()` form). The link name a pool recorded
 * (`ifName`) is not used: in bridge mode the bridge `azure0` carries eth0's
 * MAC and addresses, so either link may be the one a refresh matched. A
 * pool whose MAC is {@link UNBOUND_MAC} (the static shorthand, which skips
 * MAC matching; pools that the adoption of the Go plugin's state made
 * without a known NIC, until a refresh) belongs to no NIC and serves every
 * master. A pool with another MAC that no host link has (a state rebuilt
 * without one) serves no master.
 *
 * The host's links are read by the caller (`IpamEngine`), which keeps the
 * master's MAC in a {@link MasterMacCache} per process.
 *
 * @module
 */
import type { PoolState } from "./state.ts";

/** The MAC of a pool bound to no NIC (the static shorthand). */
export const UNBOUND_MAC = "*";

/** The NIC of the config's `master`, as an allocation sees it. */
export interface MasterNic {
  /** The host link's name (config `master`). */
  readonly name: string;
  /**
   * The link's MAC, 12 lower-case hex digits; undefined when no host link
   * of that name holds an address (or none was looked for: see
   * {@link masterNicFor}).
   */
  readonly mac?: string | undefined;
}

/**
 * The master's NIC for an allocation from `state`, or undefined without
 * `master` (every pool serves). Its MAC is asked for (`macOf`, which may
 * read the host's links) only when a pool of the state is bound to a NIC:
 * pools of the static shorthand alone need no MAC.
 *
 * @param master Config `master`, or undefined.
 * @param spec The state's pools, and the MAC of a host link by name
 * (undefined when no link has the name).
 * @returns The master's NIC, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { masterNicFor } from "./master.ts";
 * const pool = { subnet: "10.0.0.0/24", gateway: "10.0.0.1",
 *   macAddress: "000d3af9dca6", priority: 0, primaryIps: [], addresses: {} };
 * const macOf = (name: string) => name === "eth0" ? "000d3af9dca6" : undefined;
 * assert.equal(masterNicFor(undefined, { pools: [pool], macOf }), undefined);
 * assert.deepEqual(masterNicFor("eth0", { pools: [pool], macOf }),
 *   { name: "eth0", mac: "000d3af9dca6" });
 * ```
 */
export function masterNicFor(
  master: string | undefined,
  spec: {
    pools: readonly PoolState[];
    macOf: (name: string) => string | undefined;
  },
): MasterNic | undefined {
  if (master === undefined) return undefined;
  const bound = spec.pools.some((p) => p.macAddress !== UNBOUND_MAC);
  return bound ? { name: master, mac: spec.macOf(master) } : { name: master };
}

/** Options of {@link MasterMacCache.get}. */
export interface MasterMacAge {
  /** The current time, epoch ms. */
  readonly now: number;
  /** How old a MAC may be, in ms. */
  readonly maxAgeMs: number;
}

/**
 * The MACs of master links as this process last read them. In the agent
 * every ADD runs in one process, and reading the host's links
 * (`Deno.networkInterfaces()`) costs about 2 ms with 250 pods' veths on
 * the host, so an ADD reuses the master's MAC read within the refresh
 * interval (the age its pools may have too). A link's MAC is its NIC's,
 * which on Azure changes only with a stopped VM.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { MasterMacCache } from "./master.ts";
 * const cache = new MasterMacCache();
 * cache.set("eth0", { mac: "000d3af9dca6", now: 1000 });
 * assert.equal(cache.get("eth0", { now: 5000, maxAgeMs: 10_000 }), "000d3af9dca6");
 * assert.equal(cache.get("eth0", { now: 20_000, maxAgeMs: 10_000 }), undefined);
 * assert.equal(cache.get("eth0", { now: 999, maxAgeMs: 10_000 }), undefined);
 * ```
 */
export class MasterMacCache {
  #byName = new Map<string, { mac: string; at: number }>();

  /**
   * The MAC of link `name` as read less than `maxAgeMs` ago (a clock that
   * went back ends it).
   *
   * @param name The link's name.
   * @param age The current time and the longest age.
   * @returns The MAC, or undefined when none was read recently.
   */
  get(name: string, age: MasterMacAge): string | undefined {
    const seen = this.#byName.get(name);
    if (seen === undefined) return undefined;
    const elapsed = age.now - seen.at;
    return elapsed >= 0 && elapsed < age.maxAgeMs ? seen.mac : undefined;
  }

  /**
   * Remembers what a read of the host's links found for link `name`.
   *
   * @param name The link's name.
   * @param seen Its MAC (undefined when no link had the name: forgotten)
   * and when it was read, epoch ms.
   */
  set(name: string, seen: { mac: string | undefined; now: number }): void {
    if (seen.mac === undefined) this.#byName.delete(name);
    else this.#byName.set(name, { mac: seen.mac, at: seen.now });
  }
}

/**
 * Whether `pool` may serve an allocation under `master`: always without
 * master, and for a pool bound to no NIC; otherwise when the pool's MAC is
 * the master's.
 *
 * @param pool The pool.
 * @param master The master's NIC, or undefined.
 * @returns True when the pool serves.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { onMaster } from "./master.ts";
 * const pool = { subnet: "10.0.0.0/24", gateway: "10.0.0.1",
 *   macAddress: "000d3af9dca6", priority: 0, primaryIps: [], addresses: {} };
 * assert.ok(onMaster(pool, undefined));
 * assert.ok(onMaster(pool, { name: "eth0", mac: "000d3af9dca6" }));
 * assert.ok(!onMaster(pool, { name: "eth1", mac: "000d3af9dc11" }));
 * assert.ok(onMaster({ ...pool, macAddress: "*" }, { name: "eth1" }));
 * ```
 */
export function onMaster(
  pool: PoolState,
  master: MasterNic | undefined,
): boolean {
  return master === undefined || pool.macAddress === UNBOUND_MAC ||
    (master.mac !== undefined && pool.macAddress === master.mac);
}

/**
 * Names the master for messages: `master "eth0" (NIC 000d3af9dca6)`, or
 * `master "eth9" (no host link of that name holds an address)`.
 *
 * @param master The master's NIC.
 * @returns The text.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeMaster } from "./master.ts";
 * assert.equal(describeMaster({ name: "eth0", mac: "000d3af9dca6" }),
 *   'master "eth0" (NIC 000d3af9dca6)');
 * ```
 */
export function describeMaster(master: MasterNic): string {
  return master.mac === undefined
    ? `master "${master.name}" (no host link of that name holds an address)`
    : `master "${master.name}" (NIC ${master.mac})`;
}
