/**
 * The `azure-vnet` CNI plugin (bridge mode). Logs to
 * `/var/log/azure-vnet.log` (directory override `AZURE_VNET_LOG_DIR`); state
 * in `/var/run/azure-vnet.json` (directory override `AZURE_VNET_STATE_DIR`).
 *
 * @module
 */
import { runPlugin, wantsLogFile } from "@vnet/cni";
import denoJson from "../../deno.json" with { type: "json" };
import { createAzureVnetHandlers } from "./azure_vnet.ts";
import { logFilePath, PluginLogging } from "./plugin_logging.ts";

const env = Deno.env.toObject();
const logs = wantsLogFile(env, Deno.args)
  ? await PluginLogging.start(logFilePath(env))
  : undefined;
const handlers = createAzureVnetHandlers({
  onConfig: (config) => logs?.setLevel(config.logLevel),
});
const code = await runPlugin(handlers, {
  name: "azure-vnet",
  version: denoJson.version,
}, { env }).finally(() => logs?.[Symbol.asyncDispose]());
Deno.exit(code);
