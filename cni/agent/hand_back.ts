/**
 * Which forwarded calls the agent hands back to the plugin's own process:
 * those of an `azure-vnet` network whose IPAM is a delegate plugin the
 * agent may not exec, or `azure-vnet-ipam` itself run as a plugin.
 *
 * The agent's launcher grants `--allow-run` on the executables found in its
 * own `CNI_PATH` when it started; a runtime's call may name other
 * directories, or a plugin installed since. The plugin's launcher grants
 * exactly the call's `CNI_PATH`, so the plugin's process can run what the
 * agent may not. A delegate `azure-vnet-ipam` (`ipamExec`) would forward
 * back to this agent and wait for a slot while holding one: the plugin's
 * process runs that call too.
 *
 * @module
 */
import { ipamDelegateOf } from "@vnet/azure-vnet";
import { CniError, CODES, findPlugin } from "@vnet/cni";
import type { AgentRequest } from "@vnet/forward";

/**
 * Why a request must run in the plugin's own process, or undefined when the
 * agent serves it: an `azure-vnet` call whose IPAM delegate is
 * `azure-vnet-ipam`, or one this process may not find (read) or run in the
 * call's `CNI_PATH`. The delegate is looked up as the plugin looks it up
 * (`findPlugin` of `@vnet/cni`).
 *
 * @param request The forwarded request.
 * @param stdin Its stdin (the network config).
 * @returns The reason, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { handBackReason } from "./hand_back.ts";
 * const stdin = new TextEncoder().encode(
 *   '{"ipam":{"type":"azure-vnet-ipam"},"ipamExec":true}',
 * );
 * const env = { CNI_COMMAND: "ADD", CNI_PATH: "/opt/cni/bin" };
 * assert.match(
 *   await handBackReason({ plugin: "azure-vnet", env, stdin: "" }, stdin) ?? "",
 *   /forwards to this agent/,
 * );
 * assert.equal(
 *   await handBackReason({ plugin: "azure-vnet-ipam", env, stdin: "" }, stdin),
 *   undefined,
 * );
 * ```
 */
export async function handBackReason(
  request: AgentRequest,
  stdin: Uint8Array,
): Promise<string | undefined> {
  if (request.plugin !== "azure-vnet") return undefined;
  let config: unknown;
  try {
    config = JSON.parse(new TextDecoder().decode(stdin));
  } catch {
    return undefined;
  }
  const type = ipamDelegateOf(config);
  if (type === undefined) return undefined;
  if (type === "azure-vnet-ipam") {
    return "its IPAM plugin azure-vnet-ipam forwards to this agent";
  }
  const dirs = (request.env.CNI_PATH ?? "").split(":").filter((d) => d !== "");
  let file: string;
  try {
    file = await findPlugin(type, dirs);
  } catch (err) {
    // A lookup this process may not make: the plugin's process may. Not
    // found, or an invalid type: the agent answers as the plugin would.
    return err instanceof CniError && err.code === CODES.ioFailure
      ? `this agent may not look for "${type}": ${err.message}`
      : undefined;
  }
  return Deno.permissions.querySync({ name: "run", command: file }).state ===
      "granted"
    ? undefined
    : `this agent may not run "${file}"`;
}
