/**
 * The `azure-vnet-ipam` CNI IPAM plugin. Logs to
 * `/var/log/azure-vnet-ipam.log` (directory override `AZURE_VNET_LOG_DIR`);
 * state in `/var/run/azure-vnet-ipam.json` (directory override
 * `AZURE_VNET_STATE_DIR`).
 *
 * @module
 */
import { runPlugin, startPluginLogging } from "@vnet/cni";
import denoJson from "./deno.json" with { type: "json" };
import { createIpamHandlers } from "./mod.ts";

const env = Deno.env.toObject();
const logs = await startPluginLogging("azure-vnet-ipam.log", {
  env,
  args: Deno.args,
});
const code = await runPlugin(createIpamHandlers(), {
  name: "azure-vnet-ipam",
  version: denoJson.version,
}, { env }).finally(() => logs[Symbol.asyncDispose]());
Deno.exit(code);
