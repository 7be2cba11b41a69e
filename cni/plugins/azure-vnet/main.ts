/**
 * The `azure-vnet` CNI plugin (bridge mode). Logs to
 * `/var/log/azure-vnet.log` (directory override `AZURE_VNET_LOG_DIR`); state
 * in `/var/run/azure-vnet.json` (directory override `AZURE_VNET_STATE_DIR`).
 *
 * @module
 */
import { runPlugin, startPluginLogging } from "@vnet/cni";
import denoJson from "./deno.json" with { type: "json" };
import { createAzureVnetHandlers } from "./azure_vnet.ts";

const env = Deno.env.toObject();
// The in-process IPAM engine logs where the exec'd azure-vnet-ipam would.
const logs = await startPluginLogging("azure-vnet.log", {
  env,
  args: Deno.args,
  categoryFiles: { "azure-vnet-ipam": "azure-vnet-ipam.log" },
});
const handlers = createAzureVnetHandlers({
  onConfig: (config) => logs.setLevel(config.logLevel),
});
const code = await runPlugin(handlers, {
  name: "azure-vnet",
  version: denoJson.version,
}, { env }).finally(() => logs[Symbol.asyncDispose]());
Deno.exit(code);
