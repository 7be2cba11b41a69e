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
import type { AgentRequest } from "@vnet/forward";

/** Whether this process holds the permission. */
function granted(descriptor: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(descriptor).state === "granted";
}

/** Whether `file` is an executable regular file (read is granted). */
function executable(file: string): boolean {
  try {
    const st = Deno.statSync(file);
    return st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * Why a request must run in the plugin's own process, or undefined when the
 * agent serves it: an `azure-vnet` call whose IPAM delegate is
 * `azure-vnet-ipam`, or one this process may not find (read) or run in the
 * call's `CNI_PATH`.
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
 *   handBackReason({ plugin: "azure-vnet", env, stdin: "" }, stdin) ?? "",
 *   /forwards to this agent/,
 * );
 * assert.equal(
 *   handBackReason({ plugin: "azure-vnet-ipam", env, stdin: "" }, stdin),
 *   undefined,
 * );
 * ```
 */
export function handBackReason(
  request: AgentRequest,
  stdin: Uint8Array,
): string | undefined {
  if (request.plugin !== "azure-vnet") return undefined;
  let config: unknown;
  try {
    config = JSON.parse(new TextDecoder().decode(stdin));
  } catch {
    return undefined;
  }
  const type = ipamDelegateOf(config);
  // An invalid type is the config's error, which the agent answers.
  if (type === undefined || type.includes("/")) return undefined;
  if (type === "azure-vnet-ipam") {
    return "its IPAM plugin azure-vnet-ipam forwards to this agent";
  }
  const dirs = (request.env.CNI_PATH ?? "").split(":").filter((d) => d !== "");
  for (const dir of dirs) {
    const file = `${dir}/${type}`;
    if (!granted({ name: "read", path: file })) {
      return `this agent may not look for "${file}"`;
    }
    if (!executable(file)) continue;
    return granted({ name: "run", command: file })
      ? undefined
      : `this agent may not run "${file}"`;
  }
  // Found nowhere: the agent answers as the plugin would (code 7).
  return undefined;
}
