/**
 * `azure-vnet` STATUS: can the plugin serve an ADD now.
 *
 * @module
 */
import { type CmdArgs, CniError, CODES } from "@vnet/cni";
import { type AzureVnetContext, beginInvocation } from "./context.ts";
import { modeDriver, refuseModeChange } from "./mode.ts";
import type { EbtablesRule } from "./ebtables_rules.ts";
import { type NetworkRecord, readState } from "./state.ts";

/** Fails with 51 naming the host rules that are missing. */
async function checkHostRules(
  ctx: AzureVnetContext,
  spec: { net: NetworkRecord; rules: EbtablesRule[] },
): Promise<void> {
  let gone: EbtablesRule[];
  try {
    gone = await ctx.ebtables.missing(spec.rules);
  } catch (err) {
    throw new CniError(
      CODES.notAvailable,
      `Network "${spec.net.name}" cannot serve ADD: its ebtables rules cannot be listed`,
      { cause: err },
    );
  }
  if (gone.length === 0) return;
  throw new CniError(
    CODES.notAvailableLimited,
    `Network "${spec.net.name}" lost host ebtables rules: ${
      gone.map((r) => `${r.chain} ${r.args.join(" ")}`).join("; ")
    }`,
    {
      details:
        "Its pods may have no egress (MAC SNAT) or no ARP from the fabric; the next ADD on this network puts the rules back",
    },
  );
}

/**
 * STATUS: the recorded network is of the config's mode and its host side
 * can serve ADDs (bridge mode: the bridge holds its master; transparent
 * mode: the master is there, on no bridge), its host rules are all there
 * (bridge mode: without the SNAT the pods have no egress), and the IPAM
 * has a free address.
 *
 * @param ctx The context.
 * @param args The CNI call.
 * @throws {CniError} Code 50 (or the IPAM's 50/51) when an ADD would fail;
 * 51 when host rules are missing (the pods' connectivity is limited; the
 * next ADD puts them back).
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
    await checkHostRules(ctx, { net, rules: driver.hostRules(net) });
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
