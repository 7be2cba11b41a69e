/**
 * The warm pool's decision (#16), pure and deterministic: given the NIC's
 * IP configurations and the addresses in use, which ipconfigs one batched
 * NIC update adds or removes so the free addresses come back between
 * `warmMin` and `warmMax`. The controller that reads ARM and applies the
 * plan is `WarmPool` (`warm_pool.ts`); this is its core.
 *
 * Rules:
 * - below `warmMin` free, grow to the middle of the band (rounded up), so
 *   one update covers a burst and a shrink does not follow at once; above
 *   `warmMax`, shrink to the same middle;
 * - never more than `maxIpConfigs` (Azure: 256 per NIC, primary included);
 *   a plan that cannot add all it wants says `atLimit`;
 * - never remove the primary, an address in use, or an ipconfig that has
 *   no address yet (still being provisioned); remove the highest addresses
 *   first (the allocator hands out the lowest), and sticky addresses
 *   (remembered for a pod) last.
 *
 * @module
 */
import { parseIpv4 } from "@vnet/address";

/** One IP configuration of the NIC, as ARM reports it. */
export interface NicIpConfig {
  /** The ipconfig's name (`ipconfig1`...). */
  readonly name: string;
  /** Its private address; undefined while ARM still allocates it. */
  readonly address?: string | undefined;
  /** The NIC's primary ipconfig. */
  readonly primary: boolean;
  /**
   * An IPv6 ipconfig: it takes room on the NIC but the warm pool, which
   * keeps IPv4 addresses, neither counts nor removes it.
   */
  readonly ipv6?: boolean;
}

/** What {@link planWarmPool} decides from. */
export interface WarmPlanInput {
  /** The NIC's ipconfigs, primary included. */
  readonly ipConfigs: readonly NicIpConfig[];
  /**
   * Addresses not free: held by an attachment (stale ones included) or
   * the node's own (the pools' primary addresses, the host's addresses).
   */
  readonly inUse: ReadonlySet<string>;
  /** Free addresses remembered for a pod (sticky): removed last. */
  readonly remembered?: ReadonlySet<string>;
  /** Grow below this many free addresses. */
  readonly warmMin: number;
  /** Shrink above this many free addresses. */
  readonly warmMax: number;
  /** The most ipconfigs on the NIC, primary included (at most 256). */
  readonly maxIpConfigs: number;
}

/** One batched NIC update, or nothing to do. */
export interface WarmPlan {
  /** Free addresses now (ipconfigs still without an address count). */
  readonly free: number;
  /** Names of the ipconfigs to add. */
  readonly add: readonly string[];
  /** Names of the ipconfigs to remove. */
  readonly remove: readonly string[];
  /** More were wanted than `maxIpConfigs` allows (ADDs may get 100). */
  readonly atLimit: boolean;
}

/**
 * An ipconfig the warm pool keeps: an IPv4 secondary.
 *
 * @param c The ipconfig.
 * @returns True when it counts towards the band and may be removed.
 */
export function isPoolSecondary(c: NicIpConfig): boolean {
  return !c.primary && c.ipv6 !== true;
}

/**
 * Plans one NIC update.
 *
 * @param input The NIC, the addresses in use and the band.
 * @returns The names to add and remove (both empty when inside the band).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { planWarmPool } from "./warm_plan.ts";
 * const plan = planWarmPool({
 *   ipConfigs: [
 *     { name: "ipconfig1", address: "10.0.0.4", primary: true },
 *     { name: "ipconfig2", address: "10.0.0.5", primary: false },
 *   ],
 *   inUse: new Set(["10.0.0.5"]),
 *   warmMin: 2, warmMax: 6, maxIpConfigs: 256,
 * });
 * assert.deepEqual(plan.add, ["ipconfig3", "ipconfig4", "ipconfig5", "ipconfig6"]);
 * ```
 */
export function planWarmPool(input: WarmPlanInput): WarmPlan {
  const secondaries = input.ipConfigs.filter(isPoolSecondary);
  const isFree = (c: NicIpConfig) =>
    c.address === undefined || !input.inUse.has(c.address);
  const free = secondaries.filter(isFree).length;
  const target = Math.ceil((input.warmMin + input.warmMax) / 2);
  if (free < input.warmMin) {
    const want = target - free;
    const room = Math.max(0, input.maxIpConfigs - input.ipConfigs.length);
    const count = Math.min(want, room);
    return {
      free,
      add: freshNames(input.ipConfigs, count),
      remove: [],
      atLimit: count < want,
    };
  }
  if (free > input.warmMax) {
    const remembered = input.remembered ?? new Set<string>();
    const removable = secondaries
      .filter((c) => c.address !== undefined && isFree(c))
      .map((c) => ({
        name: c.name,
        n: parseIpv4(c.address ?? ""),
        sticky: remembered.has(c.address ?? "") ? 1 : 0,
      }))
      .sort((a, b) => a.sticky - b.sticky || b.n - a.n);
    return {
      free,
      add: [],
      remove: removable.slice(0, free - target).map((c) => c.name),
      atLimit: false,
    };
  }
  return { free, add: [], remove: [], atLimit: false };
}

/** The `count` lowest `ipconfig<N>` names the NIC does not use. */
function freshNames(
  existing: readonly NicIpConfig[],
  count: number,
): string[] {
  const used = new Set(existing.map((c) => c.name));
  const out: string[] = [];
  for (let k = 1; out.length < count; k++) {
    if (!used.has(`ipconfig${k}`)) out.push(`ipconfig${k}`);
  }
  return out;
}
