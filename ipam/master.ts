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
 * MAC matching, and pools adopted from the Go plugin until the first
 * refresh) belongs to no NIC and serves every master.
 *
 * Pure: the host links are read by the caller.
 *
 * @module
 */
import type { HostLink } from "./pool.ts";
import type { PoolState } from "./state.ts";

/** The MAC of a pool bound to no NIC (the static shorthand). */
export const UNBOUND_MAC = "*";

/** The NIC of the config's `master`, as an allocation sees it. */
export interface MasterNic {
  /** The host link's name (config `master`). */
  readonly name: string;
  /**
   * The link's MAC, 12 lower-case hex digits; undefined when no host link
   * of that name was found (or none was looked for: see
   * {@link masterNicFor}).
   */
  readonly mac?: string | undefined;
}

/**
 * The master's NIC among the host's links.
 *
 * @param name Config `master`.
 * @param links The host's links (`readHostLinks()` of `source.ts`).
 * @returns The name and the link's MAC (undefined when no link has the name).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { findMasterNic } from "./master.ts";
 * const links = [{ name: "eth0", mac: "000d3af9dca6" }];
 * assert.deepEqual(findMasterNic("eth0", links),
 *   { name: "eth0", mac: "000d3af9dca6" });
 * assert.equal(findMasterNic("eth9", links).mac, undefined);
 * ```
 */
export function findMasterNic(
  name: string,
  links: readonly HostLink[],
): MasterNic {
  return { name, mac: links.find((l) => l.name === name)?.mac };
}

/**
 * The master's NIC for an allocation from `state`, or undefined without
 * `master` (every pool serves). The host links are read only when a pool
 * of the state is bound to a NIC: pools of the static shorthand alone need
 * no MAC.
 *
 * @param master Config `master`, or undefined.
 * @param spec The state's pools and a reader of the host links.
 * @returns The master's NIC, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { masterNicFor } from "./master.ts";
 * const pool = { subnet: "10.0.0.0/24", gateway: "10.0.0.1",
 *   macAddress: "000d3af9dca6", priority: 0, primaryIps: [], addresses: {} };
 * const links = () => [{ name: "eth0", mac: "000d3af9dca6" }];
 * assert.equal(masterNicFor(undefined, { pools: [pool], links }), undefined);
 * assert.equal(masterNicFor("eth0", { pools: [pool], links })?.mac,
 *   "000d3af9dca6");
 * ```
 */
export function masterNicFor(
  master: string | undefined,
  spec: { pools: readonly PoolState[]; links: () => readonly HostLink[] },
): MasterNic | undefined {
  if (master === undefined) return undefined;
  const bound = spec.pools.some((p) => p.macAddress !== UNBOUND_MAC);
  return bound ? findMasterNic(master, spec.links()) : { name: master };
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
