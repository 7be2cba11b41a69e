/**
 * The `azure-vnet` handlers (bridge mode) for `runPlugin()`: the verbs
 * `cmdAdd`, `cmdDel`, `cmdCheck`, `cmdStatus` and `cmdGc` bound to one
 * context.
 *
 * @module
 */
import { bindVerbs, type PluginHandlers } from "@vnet/cni";
import { cmdAdd } from "./cmd_add.ts";
import { cmdCheck } from "./cmd_check.ts";
import { cmdDel } from "./cmd_del.ts";
import { cmdGc } from "./cmd_gc.ts";
import { cmdStatus } from "./cmd_status.ts";
import { type AzureVnetOptions, createContext } from "./context.ts";

/**
 * Creates the `azure-vnet` handlers.
 *
 * Requires CAP_NET_ADMIN in the current and the pod namespaces, the
 * `ebtables` binary, and write access to the state directory.
 *
 * @param options State dir, kernel, ebtables, IPAM route, config hook.
 * @returns The handlers for `runPlugin()`.
 *
 * @tags allow-ffi, allow-run, allow-read, allow-write, allow-env
 *
 * @example Usage
 * ```ts ignore
 * import { runPlugin } from "@vnet/cni";
 * import { createAzureVnetHandlers } from "./azure_vnet.ts";
 * const code = await runPlugin(createAzureVnetHandlers(), {
 *   name: "azure-vnet",
 *   version: "0.1.0",
 * });
 * ```
 */
export function createAzureVnetHandlers(
  options: AzureVnetOptions = {},
): PluginHandlers {
  return bindVerbs(createContext(options), {
    cmdAdd,
    cmdDel,
    cmdCheck,
    cmdStatus,
    cmdGc,
  });
}
