/**
 * The full `azure-vnet-ipam` plugin in this process: logging, handlers and
 * `runPlugin()`. `main.ts` imports it only when no agent answers (#14).
 *
 * @module
 */
import { runPlugin, startPluginLogging } from "@vnet/cni";
import denoJson from "./deno.json" with { type: "json" };
import { createIpamHandlers } from "./handlers.ts";

/**
 * Runs one invocation in process, reading stdin itself.
 *
 * @param io The process environment.
 * @returns The exit code.
 */
export async function runInProcess(
  io: { env: Record<string, string> },
): Promise<number> {
  const env = io.env;
  const logs = await startPluginLogging("azure-vnet-ipam.log", {
    env,
    args: Deno.args,
  });
  return await runPlugin(createIpamHandlers(), {
    name: "azure-vnet-ipam",
    version: denoJson.version,
  }, { env }).finally(() => logs[Symbol.asyncDispose]());
}
