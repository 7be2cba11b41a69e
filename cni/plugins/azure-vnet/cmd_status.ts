/**
 * `azure-vnet` STATUS: can the plugin serve an ADD now.
 *
 * @module
 */
import { type CmdArgs, CniError, CODES } from "@vnet/cni";
import {
  type AzureVnetContext,
  beginInvocation,
  type Invocation,
} from "./context.ts";
import type { EbtablesRule } from "./ebtables_rules.ts";
import { restoreHostRules } from "./host_rules.ts";
import { modeDriver, refuseModeChange } from "./mode.ts";
import { type NetworkRecord, readState } from "./state.ts";

/**
 * Puts back host rules that are missing (STATUS is how a runtime learns
 * whether to create pods at all: with containerd 2, a failing STATUS keeps
 * ADDs, and so their repair, from ever coming); fails with 50 when the
 * rules cannot be listed, 51 when they cannot be put back.
 */
async function repairHostRules(
  ctx: AzureVnetContext,
  spec: { inv: Invocation; net: NetworkRecord },
): Promise<void> {
  const { net } = spec;
  let gone: EbtablesRule[];
  try {
    gone = await ctx.ebtables.missing(modeDriver(net.mode).hostRules(net));
  } catch (err) {
    throw new CniError(
      CODES.notAvailable,
      `Network "${net.name}" cannot serve ADD: its ebtables rules cannot be listed`,
      { cause: err },
    );
  }
  if (gone.length === 0) return;
  try {
    await restoreHostRules(ctx, { ...spec, by: "STATUS" });
  } catch (err) {
    if (err instanceof CniError && err.code === CODES.tryAgainLater) throw err;
    throw new CniError(
      CODES.notAvailableLimited,
      `Network "${net.name}" lost host ebtables rules and cannot put them back: ${
        gone.map((r) => `${r.chain} ${r.args.join(" ")}`).join("; ")
      }`,
      {
        details:
          "Its pods may have no egress (MAC SNAT) or no ARP from the fabric",
        cause: err,
      },
    );
  }
}

/**
 * STATUS: the recorded network is of the config's mode and its host side
 * can serve ADDs (bridge mode: the bridge holds its master; transparent
 * mode: the master is there, on no bridge), its host rules are all there
 * (bridge mode: without the SNAT the pods have no egress; missing ones are
 * put back), and the IPAM has a free address.
 *
 * @param ctx The context.
 * @param args The CNI call.
 * @throws {CniError} Code 50 (or the IPAM's 50/51) when an ADD would fail;
 * 51 when host rules are missing and cannot be put back (the pods'
 * connectivity is limited); 11 on a lock timeout.
 */
export async function cmdStatus(
  ctx: AzureVnetContext,
  args: CmdArgs,
): Promise<void> {
  const inv = await beginInvocation(ctx, args);
  const net = (await readState(inv.stateDir)).networks[inv.cfg.name];
  if (net !== undefined) {
    refuseModeChange(inv.cfg, net, { code: CODES.notAvailable });
    using host = ctx.kernel().host();
    const driver = modeDriver(net.mode);
    const problem = driver.statusProblem(host, net);
    if (problem !== undefined) {
      throw new CniError(
        CODES.notAvailable,
        `Network "${net.name}" cannot serve ADD: ${problem}`,
      );
    }
    await repairHostRules(ctx, { inv, net });
  }
  try {
    await inv.ipam.status(args);
  } catch (err) {
    if (
      err instanceof CniError &&
      (err.code === CODES.notAvailable ||
        err.code === CODES.notAvailableLimited)
    ) throw err;
    throw new CniError(
      CODES.notAvailable,
      `IPAM "${inv.cfg.ipam.type}" is not available`,
      { cause: err },
    );
  }
}
