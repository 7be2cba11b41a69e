/**
 * The full `azure-vnet` plugin in this process: logging, handlers and
 * `runPlugin()`. `main.ts` imports it only when no agent answers (#14).
 *
 * @module
 */
import { runPlugin, startPluginLogging } from "@vnet/cni";
import denoJson from "./deno.json" with { type: "json" };
import { createAzureVnetHandlers } from "./azure_vnet.ts";

/**
 * Runs one invocation in process, reading stdin itself unless the
 * forwarder has (an agent that never received the request).
 *
 * @param io The process environment, and stdin if read already.
 * @returns The exit code.
 */
export async function runInProcess(
  io: { env: Record<string, string>; stdin?: Uint8Array },
): Promise<number> {
  const env = io.env;
  // The in-process IPAM engine logs where the exec'd azure-vnet-ipam would.
  const logs = await startPluginLogging("azure-vnet.log", {
    env,
    args: Deno.args,
    categoryFiles: { "azure-vnet-ipam": "azure-vnet-ipam.log" },
  });
  const handlers = createAzureVnetHandlers({
    onConfig: (config) => logs.setLevel(config.logLevel),
  });
  return await runPlugin(handlers, {
    name: "azure-vnet",
    version: denoJson.version,
  }, { env, ...(io.stdin === undefined ? {} : { stdin: io.stdin }) })
    .finally(() => logs[Symbol.asyncDispose]());
}
