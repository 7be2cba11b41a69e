/**
 * The IPAM side of a NIC change made by the NIC tool: what the node's
 * `azure-vnet-ipam.json` shows in use, and keeping its pools in step with
 * the NIC through the engine's public `IpamEngine.syncNic`, the call the
 * agent's warm pool makes (#16). A scale-down withdraws the addresses it is
 * about to remove under the IPAM's lock before the PUT, so no ADD can
 * reserve one while ARM removes it; after the PUT the pools take the NIC as
 * ARM left it, and a refresh from a wireserver or IMDS that still lags ARM
 * does not bring a removed address back (the engine remembers its NIC
 * changes for a few minutes).
 *
 * @module
 */
import type { IpamEngine, IpamState } from "@vnet/ipam";
import { readIpamState } from "@vnet/ipam";

/** Options of {@link IpamGuard.open}. */
export interface IpamGuardOptions {
  /** Path of `azure-vnet-ipam.json`. */
  readonly statePath: string;
  /** The IPAM engine on that file. */
  readonly engine: IpamEngine;
  /** Receives warnings. */
  readonly progress: (line: string) => void;
}

/** Held addresses (stale ones too), as the warm pool counts them. */
function heldIn(state: IpamState | undefined): Set<string> {
  const held = new Set<string>();
  for (const pool of Object.values(state?.pools ?? {})) {
    for (const [ip, rec] of Object.entries(pool.addresses)) {
      if (rec.containerId !== undefined) held.add(ip);
    }
  }
  return held;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The node's IPAM state as the NIC tool sees it, and the changes it makes
 * there. Without a readable state file it changes nothing.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { IpamEngine } from "@vnet/ipam";
 * import { IpamGuard } from "./ipam_guard.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const guard = await IpamGuard.open({
 *   statePath: `${dir}/azure-vnet-ipam.json`,
 *   engine: new IpamEngine({ stateDir: dir }),
 *   progress: () => {},
 * });
 * assert.equal(guard.readable, false);
 * assert.deepEqual(guard.held(["10.0.0.5"]), []);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class IpamGuard {
  #options: IpamGuardOptions;
  #held: Set<string>;
  #problem: unknown;
  #state: IpamState | undefined;

  private constructor(
    options: IpamGuardOptions,
    read: { state?: IpamState | undefined; problem?: unknown },
  ) {
    this.#options = options;
    this.#state = read.state;
    this.#problem = read.problem;
    this.#held = heldIn(read.state);
  }

  /**
   * Reads the IPAM state (unlocked: writes are atomic renames).
   *
   * @param options The state file, its engine, and where warnings go.
   * @returns The guard; {@link IpamGuard.readable} says whether the file
   *   could be read.
   */
  static async open(options: IpamGuardOptions): Promise<IpamGuard> {
    try {
      return new IpamGuard(options, {
        state: await readIpamState(options.statePath),
      });
    } catch (problem) {
      return new IpamGuard(options, { problem });
    }
  }

  /** True when the state file exists and could be read. */
  get readable(): boolean {
    return this.#state !== undefined;
  }

  /**
   * Why the state file cannot tell which addresses are in use, or
   * undefined when it can.
   */
  get unreadableReason(): string | undefined {
    if (this.readable) return undefined;
    const path = this.#options.statePath;
    return this.#problem === undefined
      ? `no IPAM state file "${path}"`
      : `cannot read IPAM state file "${path}" (${messageOf(this.#problem)})`;
  }

  /**
   * The addresses of `addresses` that a pod holds, per the last read.
   *
   * @param addresses The addresses to look up.
   * @returns Those held, in the given order.
   */
  held(addresses: readonly string[]): string[] {
    return addresses.filter((ip) => this.#held.has(ip));
  }

  /**
   * Withdraws free addresses from the NIC's pools under the IPAM's lock, so
   * that no ADD reserves them, keeping `keep`; then reads again who holds
   * what, so {@link IpamGuard.held} tells which addresses a pod took before
   * the withdrawal. Does nothing without a readable state file.
   *
   * @param nic The NIC's MAC (any form), the secondary IPv4 addresses that
   *   stay, and those about to go (kept out even where no pool has them
   *   yet, so that a refresh during the PUT cannot hand them out).
   * @returns The addresses withdrawn.
   * @throws {CniError} 11 on a lock timeout, 102 on a corrupt state file.
   */
  async withdraw(
    nic: {
      macAddress: string;
      keep: readonly string[];
      going: readonly string[];
    },
  ): Promise<string[]> {
    if (!this.readable) return [];
    const { removed } = await this.#options.engine.syncNic({
      macAddress: nic.macAddress,
      addresses: nic.keep,
      withdrawn: nic.going,
    });
    this.#state = await readIpamState(this.#options.statePath);
    this.#held = heldIn(this.#state);
    return removed;
  }

  /**
   * Makes the NIC's pools carry exactly its secondary IPv4 addresses (after
   * the PUT, or to give back a withdrawal): new ones are free at once,
   * withdrawn ones stay out. Best effort: a failure is a warning, as the
   * IPAM's next refresh finds the NIC's addresses too. Does nothing
   * without a state file.
   *
   * @param nic The NIC's MAC (any form) and secondary IPv4 addresses.
   * @param why What the sync is for, for the warning.
   */
  async sync(
    nic: { macAddress: string; addresses: readonly string[] },
    why: string,
  ): Promise<void> {
    if (!this.readable && this.#problem === undefined) return;
    try {
      await this.#options.engine.syncNic(nic);
    } catch (err) {
      this.#options.progress(
        `Warning: cannot ${why} in IPAM state file "${this.#options.statePath}" (${
          messageOf(err)
        }); the IPAM's next refresh from the wireserver or IMDS does`,
      );
    }
  }
}
