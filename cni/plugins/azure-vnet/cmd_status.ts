/**
 * `azure-vnet` STATUS: can the plugin serve an ADD now.
 *
 * @module
 */
import { type CmdArgs, CniError, CODES } from "@vnet/cni";
import { type AzureVnetContext, beginInvocation } from "./context.ts";
import { modeDriver, refuseModeChange } from "./mode.ts";
import { readState } from "./state.ts";

/**
 * STATUS: the recorded network is of the config's mode and its host side
 * can serve ADDs (bridge mode: the bridge holds its master; transparent
 * mode: the master is there, on no bridge), and the IPAM has a free
 * address.
 *
 * @param ctx The context.
 * @param args The CNI call.
 * @throws {CniError} Code 50 (or the IPAM's 50/51) when an ADD would fail.
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
    const problem = modeDriver(net.mode).statusProblem(host, net);
    if (problem !== undefined) {
      throw new CniError(
        CODES.notAvailable,
        `Network "${net.name}" cannot serve ADD: ${problem}`,
      );
    }
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
