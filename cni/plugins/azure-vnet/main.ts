/**
 * The `azure-vnet` CNI plugin (bridge mode). Logs to
 * `/var/log/azure-vnet.log` (directory override `AZURE_VNET_LOG_DIR`); state
 * in `/var/run/azure-vnet.json` (directory override `AZURE_VNET_STATE_DIR`).
 *
 * A thin entry point (#14): when `azure-vnet-agent` listens on
 * `<state dir>/azure-vnet-agent.sock`, the call is forwarded to it;
 * otherwise the full plugin (`in_process.ts`) is imported and runs here.
 *
 * @module
 */
import { forwardOrRun } from "@vnet/forward";

const code = await forwardOrRun({
  plugin: "azure-vnet",
  load: async () => (await import("./in_process.ts")).runInProcess,
});
Deno.exit(code);
