/**
 * Which forwarded calls the agent hands back to the plugin's own process:
 * those of an `azure-vnet` network whose IPAM is a delegate plugin the
 * agent may not exec, or `azure-vnet-ipam` itself run as a plugin; and,
 * when the agent runs in a container ({@link HandBackPolicy}), every call
 * of an `azure-vnet` network whose IPAM is a delegate plugin, and, when the
 * node's `ebtables` uses another backend than the agent's, every call of a
 * bridge-mode network: the agent must not run those at all.
 *
 * The agent's launcher grants `--allow-run` on the executables found in its
 * own `CNI_PATH` when it started; a runtime's call may name other
 * directories, or a plugin installed since. The plugin's launcher grants
 * exactly the call's `CNI_PATH`, so the plugin's process can run what the
 * agent may not. A delegate `azure-vnet-ipam` (`ipamExec`) would forward
 * back to this agent and wait for a slot while holding one: the plugin's
 * process runs that call too.
 *
 * In a container, a delegate the agent exec'd would run in the container's
 * file system: host-local keeps its reservations in its `dataDir` there,
 * where the plugins' fallback on the host never sees them (it hands out the
 * same address again) and a re-created container loses them. Only our
 * in-process `azure-vnet-ipam` keeps its state in the state dir, which the
 * container shares with the host.
 *
 * @module
 */
import { ipamDelegateOf } from "@vnet/azure-vnet";
import { CniError, CODES, findPlugin } from "@vnet/cni";
import type { AgentRequest } from "@vnet/forward";
import type { HandBack } from "./server.ts";

/** What the agent must not run, decided once when it starts. */
export interface HandBackPolicy {
  /**
   * The agent runs in a container of its own (`container.ts`): no delegate
   * IPAM plugin runs in it.
   */
  readonly inContainer: boolean;
  /**
   * Set when the node's `ebtables` edits another rule set than the
   * agent's (`ebtables_backend.ts`): why no bridge-mode call runs here.
   */
  readonly bridgeRefused?: string;
}

/**
 * Whether a network config (unvalidated) is bridge mode: `mode` absent,
 * empty or `"bridge"`, as the plugin reads it.
 */
function isBridgeMode(config: unknown): boolean {
  if (typeof config !== "object" || config === null) return false;
  const mode = (config as { mode?: unknown }).mode;
  return mode === undefined || mode === "" || mode === "bridge";
}

/** The network config on stdin, parsed; undefined when it is no JSON. */
function configOf(stdin: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(stdin));
  } catch {
    return undefined;
  }
}

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
  const type = ipamDelegateOf(configOf(stdin));
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

/**
 * Why the agent must not run a request at all under `policy`, or undefined:
 * an `azure-vnet` call of a bridge-mode network while the node's `ebtables`
 * is not the agent's; in a container, an `azure-vnet` call whose IPAM is a
 * delegate plugin (anything but the in-process `azure-vnet-ipam`); each
 * whatever the command.
 *
 * @param request The forwarded request.
 * @param options Its stdin (the network config) and the policy.
 * @returns The reason, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { requiredHandBack } from "./hand_back.ts";
 * const request = {
 *   plugin: "azure-vnet" as const,
 *   env: { CNI_COMMAND: "ADD" },
 *   stdin: "",
 * };
 * const stdin = new TextEncoder().encode('{"ipam":{"type":"host-local"}}');
 * const policy = { inContainer: true };
 * assert.match(
 *   requiredHandBack(request, { stdin, policy }) ?? "",
 *   /in a container/,
 * );
 * assert.equal(
 *   requiredHandBack(request, { stdin, policy: { inContainer: false } }),
 *   undefined,
 * );
 * ```
 */
export function requiredHandBack(
  request: AgentRequest,
  options: { stdin: Uint8Array; policy: HandBackPolicy },
): string | undefined {
  const { policy } = options;
  if (request.plugin !== "azure-vnet") return undefined;
  if (!policy.inContainer && policy.bridgeRefused === undefined) {
    return undefined;
  }
  const config = configOf(options.stdin);
  if (policy.bridgeRefused !== undefined && isBridgeMode(config)) {
    return `bridge mode runs on the node's ebtables: ${policy.bridgeRefused}`;
  }
  if (!policy.inContainer) return undefined;
  const type = ipamDelegateOf(config);
  return type === undefined
    ? undefined
    : `the agent runs in a container: its delegate IPAM plugin "${type}" must run on the host, where its state stays`;
}

/**
 * The agent's hand-back decision for `AgentServerOptions.handBack` (`server.ts`):
 * {@link requiredHandBack} first (required: a forwarder that cannot run
 * the call itself gets code 11 rather than the agent running it), then
 * {@link handBackReason}.
 *
 * @param policy What the agent must not run.
 * @returns The decision function.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { handBackFor } from "./hand_back.ts";
 * const decide = handBackFor({ inContainer: true });
 * const stdin = new TextEncoder().encode('{"ipam":{"type":"host-local"}}');
 * const back = await decide(
 *   { plugin: "azure-vnet", env: { CNI_COMMAND: "DEL" }, stdin: "" },
 *   stdin,
 * );
 * assert.equal(back?.required, true);
 * ```
 */
export function handBackFor(
  policy: HandBackPolicy,
): (request: AgentRequest, stdin: Uint8Array) => Promise<HandBack | undefined> {
  return async (request, stdin) => {
    const must = requiredHandBack(request, { stdin, policy });
    if (must !== undefined) return { reason: must, required: true };
    const why = await handBackReason(request, stdin);
    return why === undefined ? undefined : { reason: why };
  };
}
