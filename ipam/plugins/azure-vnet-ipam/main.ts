/**
 * The `azure-vnet-ipam` CNI IPAM plugin. Logs to
 * `/var/log/azure-vnet-ipam.log` (directory override `AZURE_VNET_LOG_DIR`);
 * state in `/var/run/azure-vnet-ipam.json` (directory override
 * `AZURE_VNET_STATE_DIR`).
 *
 * @module
 */
import { configureLogging, runPlugin, wantsLogFile } from "@vnet/cni";
import denoJson from "../../deno.json" with { type: "json" };
import { createIpamHandlers } from "../../mod.ts";

const env = Deno.env.toObject();
const dir = (env.AZURE_VNET_LOG_DIR || "/var/log").replace(/\/+$/, "");
// A log file that cannot be opened never fails the CNI command.
const logs = wantsLogFile(env, Deno.args)
  ? await configureLogging({ file: `${dir}/azure-vnet-ipam.log` })
    .catch(() => undefined)
  : undefined;
const code = await runPlugin(createIpamHandlers(), {
  name: "azure-vnet-ipam",
  version: denoJson.version,
}, { env }).finally(() => logs?.[Symbol.asyncDispose]());
Deno.exit(code);
