/**
 * The `azure-vnet-ipam` CNI IPAM plugin. Logs to
 * `/var/log/azure-vnet-ipam.log` (directory override `AZURE_VNET_LOG_DIR`);
 * state in `/var/run/azure-vnet-ipam.json` (directory override
 * `AZURE_VNET_STATE_DIR`).
 *
 * @module
 */
import { configureLogging, runPlugin } from "@vnet/cni";
import denoJson from "../../deno.json" with { type: "json" };
import { createIpamHandlers } from "../../mod.ts";

const dir = (Deno.env.get("AZURE_VNET_LOG_DIR") || "/var/log").replace(
  /\/+$/,
  "",
);
// A log file that cannot be opened never fails the CNI command.
const logs = await configureLogging({ file: `${dir}/azure-vnet-ipam.log` })
  .catch(() => undefined);
const code = await runPlugin(createIpamHandlers(), {
  name: "azure-vnet-ipam",
  version: denoJson.version,
}).finally(() => logs?.[Symbol.asyncDispose]());
Deno.exit(code);
