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
  const logs = await startPluginLogging("azure-vnet-ipam.log", {
    env,
    args: Deno.args,
  });
  return await runPlugin(createIpamHandlers(), {
    name: "azure-vnet-ipam",
    version: denoJson.version,
  }, { env, ...(io.stdin === undefined ? {} : { stdin: io.stdin }) })
    .finally(() => logs[Symbol.asyncDispose]());
}
