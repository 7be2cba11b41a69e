/**
 * `azure-vnet` STATUS: can the plugin serve an ADD now.
 *
 * @module
 */
import { type CmdArgs, CniError, CODES } from "@vnet/cni";
import { type AzureVnetContext, beginInvocation } from "./context.ts";
import { readState } from "./state.ts";

/**
 * STATUS: the recorded network's bridge holds its master, and the IPAM has
 * a free address.
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
    using host = ctx.kernel().host();
    const bridge = host.link(net.bridge);
    const master = host.link(net.master);
    if (bridge === undefined || master?.masterIndex !== bridge.index) {
      throw new CniError(
        CODES.notAvailable,
        `Network "${net.name}" cannot serve ADD: bridge "${net.bridge}" ${
          bridge === undefined
            ? "is missing"
            : `does not hold master "${net.master}"`
        }`,
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
