/**
 * Drives the installed `azure-vnet` binary as a runtime would: `CNI_*`
 * environment, the plugin config on stdin, run "on" a node through
 * `ip netns exec` (which also remounts `/sys` for that netns).
 *
 * @module
 */
import { looksLikeIpv6, stripPrefix } from "@vnet/address";
import { execIn, type RunResult } from "./_run.ts";

/** Where a node's plugins live and keep state. */
export interface NodeCniEnv {
  /** The node netns. */
  readonly netns: string;
  /** The directory holding `azure-vnet` and `azure-vnet-ipam`. */
  readonly binDir: string;
  /** AZURE_VNET_STATE_DIR. */
  readonly stateDir: string;
  /** AZURE_VNET_LOG_DIR. */
  readonly logDir: string;
}

/** One CNI invocation. */
export interface CniCall {
  /** ADD, DEL, CHECK, GC, STATUS, VERSION. */
  readonly command: string;
  /** CNI_CONTAINERID. */
  readonly containerId?: string;
  /** CNI_NETNS (a path). */
  readonly netnsPath?: string;
  /** CNI_IFNAME. */
  readonly ifName?: string;
  /** The plugin config (stdin). */
  readonly config: Record<string, unknown>;
}

/** A finished invocation, stdout parsed. */
export interface CniOutcome extends RunResult {
  /** The parsed stdout document, or undefined when stdout was empty. */
  readonly result: Record<string, unknown> | undefined;
}

/**
 * Runs `<binDir>/azure-vnet` on a node.
 *
 * @param node The node's netns and plugin locations.
 * @param call The command, CNI arguments and config.
 * @returns The exit code, output and parsed result.
 */
export async function runCni(
  node: NodeCniEnv,
  call: CniCall,
): Promise<CniOutcome> {
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: call.command,
    CNI_PATH: node.binDir,
    CNI_CONTAINERID: call.containerId ?? "",
    CNI_NETNS: call.netnsPath ?? "",
    CNI_IFNAME: call.ifName ?? "",
    AZURE_VNET_STATE_DIR: node.stateDir,
    AZURE_VNET_LOG_DIR: node.logDir,
  };
  const res = await execIn(node.netns, [`${node.binDir}/azure-vnet`], {
    stdin: JSON.stringify(call.config),
    env,
    clearEnv: true,
    check: false,
  });
  const text = res.stdout.trim();
  let result: Record<string, unknown> | undefined;
  if (text !== "") {
    try {
      result = JSON.parse(text) as Record<string, unknown>;
    } catch {
      result = undefined;
    }
  }
  return { ...res, result };
}

/**
 * Builds the stdin config of one plugin from a conflist, as a runtime does:
 * the plugin entry plus the list's `name` and `cniVersion`.
 *
 * @param conflist The parsed conflist.
 * @param overrides Fields to set on the plugin config (e.g. `cniVersion`).
 * @returns The plugin config.
 * @throws {TypeError} When the conflist has no azure-vnet plugin.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { pluginConfig } from "./cni_runner.ts";
 * const conf = pluginConfig({
 *   cniVersion: "1.0.0", name: "azure",
 *   plugins: [{ type: "azure-vnet", mode: "bridge" }],
 * });
 * assert.equal(conf.name, "azure");
 * assert.equal(conf.type, "azure-vnet");
 * ```
 */
export function pluginConfig(
  conflist: Record<string, unknown>,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const plugins = conflist.plugins;
  const plugin = Array.isArray(plugins)
    ? plugins.find((p) =>
      typeof p === "object" && p !== null &&
      (p as Record<string, unknown>).type === "azure-vnet"
    ) as Record<string, unknown> | undefined
    : undefined;
  if (plugin === undefined) {
    throw new TypeError("Cannot find the azure-vnet plugin in the conflist");
  }
  return {
    ...plugin,
    cniVersion: conflist.cniVersion,
    name: conflist.name,
    ...overrides,
  };
}

/**
 * Reads the pod addresses and MAC out of an ADD result (any 0.3+ version).
 *
 * @param result The ADD result.
 * @returns The IPv4 address without prefix, the IPv6 one when the result
 *   has one, and the container-side MAC.
 * @throws {TypeError} When the result has no IPv4 address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { podAddress } from "./cni_runner.ts";
 * assert.deepEqual(podAddress({
 *   interfaces: [{ name: "azv1" }, { mac: "aa:bb:cc:00:00:01", sandbox: "/x" }],
 *   ips: [
 *     { address: "10.0.0.5/24", interface: 1 },
 *     { address: "fd00::5/64", interface: 1 },
 *   ],
 * }), { ip: "10.0.0.5", ipv6: "fd00::5", mac: "aa:bb:cc:00:00:01" });
 * ```
 */
export function podAddress(
  result: Record<string, unknown>,
): { ip: string; ipv6?: string; mac: string } {
  const ips = result.ips as
    | { address?: string; interface?: number }[]
    | undefined;
  const ifaces = result.interfaces as
    | { mac?: string; sandbox?: string }[]
    | undefined;
  const ip4 = ips?.find((i) => i.address?.includes(".") ?? false);
  if (ip4?.address === undefined) {
    throw new TypeError(
      `Cannot find an IPv4 address in the result ${JSON.stringify(result)}`,
    );
  }
  const iface = ip4.interface !== undefined
    ? ifaces?.[ip4.interface]
    : ifaces?.find((i) => (i.sandbox ?? "") !== "");
  const ip6 = ips?.find((i) => looksLikeIpv6(i.address ?? ""))?.address;
  return {
    ip: stripPrefix(ip4.address),
    ...(ip6 === undefined ? {} : { ipv6: stripPrefix(ip6) }),
    mac: iface?.mac ?? "",
  };
}
