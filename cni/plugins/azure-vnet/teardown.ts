/**
 * Removing a whole network (the teardown tool's logic), in either mode:
 * per-pod host objects, then the host side (bridge mode: host rules, the
 * bridge, and the master gets its addresses and routes back; transparent
 * mode: nothing beyond the pods, IPv4 forwarding stays on). Also a
 * read-only view of the state for `show`.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { flattenCause } from "@vnet/cni";
import { Ebtables } from "./ebtables.ts";
import type { Kernel } from "./kernel.ts";
import { deleteEndpoint, modeDriver } from "./mode.ts";
import { netlinkKernel } from "./netlink_kernel.ts";
import { type AzureVnetState, withState } from "./state.ts";

const log = getLogger(["azure-vnet", "teardown"]);

/** Options of {@link teardown}. */
export interface TeardownOptions {
  /** Only this network (default: every recorded network). */
  network?: string;
  /** Also remove networks that still have endpoints (their host side). */
  force?: boolean;
  /** The kernel port (default netlink). */
  kernel?: Kernel;
  /** The ebtables driver. */
  ebtables?: Ebtables;
}

/** What {@link teardown} did. */
export interface TeardownReport {
  /** Networks removed. */
  removed: string[];
  /** Endpoints whose host side was removed (with `force`). */
  endpoints: string[];
  /** Networks skipped because they still have endpoints. */
  busy: { network: string; endpoints: string[] }[];
  /** What the removed networks left on the node, and why. */
  notes: string[];
}

/**
 * Removes recorded networks and forgets them. A network with endpoints is
 * skipped unless `force` is set; then the endpoints' veths, neighbours and
 * rules go too (their IPAM reservations stay: release them with DEL or GC).
 *
 * Requires CAP_NET_ADMIN and the `ebtables` binary.
 *
 * @param stateDir The state directory (`/var/run`).
 * @param options Network filter, force, kernel, ebtables.
 * @returns What was removed and what was skipped.
 * @throws {AggregateError} When a step failed; the state keeps that network.
 *
 * @example Usage
 * ```ts ignore
 * const report = await teardown("/var/run", { network: "azure" });
 * ```
 */
export async function teardown(
  stateDir: string,
  options: TeardownOptions = {},
): Promise<TeardownReport> {
  const kernel = options.kernel ?? netlinkKernel();
  const ebtables = options.ebtables ?? new Ebtables();
  const report: TeardownReport = {
    removed: [],
    endpoints: [],
    busy: [],
    notes: [],
  };
  await withState(stateDir, async (s) => {
    const errors: unknown[] = [];
    using host = kernel.host();
    for (const net of Object.values(s.state.networks)) {
      if (options.network !== undefined && net.name !== options.network) {
        continue;
      }
      const eps = Object.entries(s.state.endpoints).filter(([, e]) =>
        e.network === net.name
      );
      if (eps.length > 0 && options.force !== true) {
        report.busy.push({
          network: net.name,
          endpoints: eps.map(([k]) => k),
        });
        continue;
      }
      let failed = false;
      for (const [k, e] of eps) {
        const errs = await deleteEndpoint({ kernel, host, ebtables }, {
          hostVeth: e.hostVeth,
          network: net,
          pod: e,
        });
        if (errs.length === 0) {
          delete s.state.endpoints[k];
          report.endpoints.push(k);
        } else {
          failed = true;
          errors.push(...errs);
        }
      }
      try {
        report.notes.push(
          ...await modeDriver(net.mode).teardownNetwork(
            { kernel: host, ebtables },
            {
              net,
              others: Object.values(s.state.networks).filter((o) =>
                o.name !== net.name
              ),
            },
          ),
        );
      } catch (err) {
        failed = true;
        errors.push(err);
      }
      if (!failed) {
        delete s.state.networks[net.name];
        report.removed.push(net.name);
        log.info("Removed network {name}", { name: net.name });
      }
      await s.save();
    }
    if (errors.length > 0) {
      log.error("Teardown failed: {err}", {
        err: flattenCause(new AggregateError(errors, "teardown")),
      });
      throw new AggregateError(errors, "Cannot fully remove the network");
    }
  });
  return report;
}

/**
 * Reads the state (under the lock) for display.
 *
 * @param stateDir The state directory.
 * @returns The state document.
 * @throws {CniError} 102 on a corrupt file, 11 on a lock timeout.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readState } from "./teardown.ts";
 * const dir = await Deno.makeTempDir();
 * assert.deepEqual((await readState(dir)).networks, {});
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function readState(stateDir: string): Promise<AzureVnetState> {
  return withState(stateDir, (s) => s.state);
}
