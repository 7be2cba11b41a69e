/**
 * The testbed: an emulated azure-vnet node in network namespaces (a node
 * whose `eth0` leads to an "azure host" acting as gateway, pods, a
 * state/log dir), plugins run as a runtime runs them, and the kernel read
 * back through `ip -j` and `ebtables`. Used by the privileged tests
 * (`tests/`) and by `deno task bench`. Requires root.
 *
 * Everything it creates in the kernel has a random `cnitest-` (or other
 * tag) name and goes with `await using`.
 *
 * @example Usage
 * ```ts ignore
 * import { AzureNode, resultIp } from "./mod.ts";
 * await using n = await AzureNode.create("10.92.0.0/16");
 * const [pod] = await n.pods(1);
 * const add = await n.run("ADD", n.conf(8), n.env("c1", pod));
 * resultIp(add); // "10.92.1.0/16"
 * ```
 *
 * @module
 */
export * from "./agent.ts";
export * from "./cni.ts";
export * from "./netns.ts";
export * from "./node.ts";
export * from "./process.ts";
