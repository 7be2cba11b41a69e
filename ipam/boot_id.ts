/**
 * Which boot the IPAM state was refreshed in: the boot time, read from
 * `Deno.osUptime()`, written to the state file as `boot-minute-<N>` (the
 * minutes since the epoch, rounded), and compared with a tolerance.
 *
 * `now - osUptime()` moves by up to a second between calls (the uptime is
 * whole seconds), so the rounded minute flips between two neighbours on
 * about one node in 60. Two ids one minute apart are therefore the same
 * boot; a reboot moves the boot time by the uptime the node had, and the
 * refresh interval covers the rest.
 *
 * @module
 */

/** Clocks of {@link readBootId} (tests inject them). */
export interface BootClockOptions {
  /** Epoch ms. Default `Date.now`. */
  now?: () => number;
  /** Seconds since boot. Default `Deno.osUptime` (`--allow-sys=osUptime`). */
  uptime?: () => number;
}

const MINUTE_ID = /^boot-minute-(-?\d+)$/;

/**
 * The boot time in minutes since the epoch, `boot-minute-<N>`, from
 * `Deno.osUptime()` (`--allow-sys=osUptime`). Deno refuses
 * `/proc/sys/kernel/random/boot_id` to anything short of `--allow-all`.
 * Compare two ids with {@link sameBoot}, never with `===`.
 *
 * @param options Injectable clocks.
 * @returns The id, or `""` when the uptime cannot be read.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readBootId } from "./boot_id.ts";
 * const id = readBootId({ now: () => 7_200_000, uptime: () => 3_600 });
 * assert.equal(id, "boot-minute-60");
 * ```
 */
export function readBootId(options: BootClockOptions = {}): string {
  try {
    const uptime = options.uptime ?? Deno.osUptime;
    const bootSec = (options.now ?? Date.now)() / 1000 - uptime();
    return `boot-minute-${Math.round(bootSec / 60)}`;
  } catch {
    return "";
  }
}

/**
 * Whether two boot ids name the same boot: equal, or both
 * `boot-minute-<N>` at most one minute apart (the wobble of
 * {@link readBootId}). Ids of other forms (tests, other writers) match
 * only when equal.
 *
 * @param stored The id in the state file.
 * @param current The id read now.
 * @returns True for the same boot.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { sameBoot } from "./boot_id.ts";
 * assert.ok(sameBoot("boot-minute-10", "boot-minute-11"));
 * assert.ok(!sameBoot("boot-minute-10", "boot-minute-12"));
 * ```
 */
export function sameBoot(stored: string, current: string): boolean {
  if (stored === current) return true;
  const a = MINUTE_ID.exec(stored)?.[1];
  const b = MINUTE_ID.exec(current)?.[1];
  if (a === undefined || b === undefined) return false;
  return Math.abs(Number(a) - Number(b)) <= 1;
}
