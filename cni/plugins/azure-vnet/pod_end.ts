/**
 * The pod side of an attachment as the kernel and the runtime show it: the
 * `CNI_NETNS` check, the pod end of a host veth, and the pod facts of a
 * `prevResult`.
 *
 * @module
 */
import { CniError, CODES, flattenCause, parseResult } from "@vnet/cni";
import type { Kernel, KernelNs, LinkState } from "./kernel.ts";
import type { EndpointRecord } from "./state.ts";

/**
 * Refuses a `CNI_NETNS` that cannot be a pod's: missing, no network
 * namespace, or the node's own (compared by device and inode, so
 * `/proc/self/ns/net` and an `ip netns attach` of the node both count).
 *
 * @param kernel The kernel port.
 * @param netns The `CNI_NETNS` path.
 * @throws {CniError} Code 4, before anything is changed.
 */
export function checkPodNetns(kernel: Kernel, netns: string): void {
  let own: boolean;
  try {
    own = kernel.isHostNetns(netns);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "does not exist"
      : err instanceof TypeError
      ? "is not a network namespace"
      : "cannot be opened";
    throw new CniError(
      CODES.invalidEnvironment,
      `Invalid CNI_NETNS ${JSON.stringify(netns)}: ${why}`,
      { cause: err },
    );
  }
  if (own) {
    throw new CniError(
      CODES.invalidEnvironment,
      `Invalid CNI_NETNS ${
        JSON.stringify(netns)
      }: it is the node's own network namespace, not a pod's`,
    );
  }
}

/**
 * The pod end of `hostVeth` inside `netns`: the link named `ifName` there
 * whose veth peer is `hostVeth`.
 *
 * @param kernel The kernel port.
 * @param host The host namespace handle.
 * @param spec The pod netns, ifname and host veth.
 * @returns The link and its addresses; undefined when it is not there.
 */
export function podEnd(
  kernel: Kernel,
  host: KernelNs,
  spec: { netns: string; ifName: string; hostVeth: string },
): { link: LinkState; addrs: string[] } | undefined {
  const veth = host.link(spec.hostVeth);
  if (veth === undefined || spec.netns === "") return undefined;
  try {
    if (kernel.isHostNetns(spec.netns)) return undefined;
    using ns = kernel.netns(spec.netns);
    const link = ns.link(spec.ifName);
    if (
      link === undefined || link.peerIndex !== veth.index ||
      veth.peerIndex !== link.index
    ) return undefined;
    return { link, addrs: ns.addrs(spec.ifName).map((a) => a.cidr) };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof TypeError) {
      return undefined;
    }
    throw err;
  }
}

/**
 * Pod MAC and addresses from a prevResult, when it has them.
 *
 * @param prev The runtime's `prevResult`.
 * @param ifName The pod interface.
 * @returns The MAC and addresses, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { podFromPrevResult } from "./pod_end.ts";
 * const prev = { cniVersion: "1.1.0",
 *   interfaces: [{ name: "eth0", mac: "aa:bb:cc:dd:ee:ff", sandbox: "/n" }],
 *   ips: [{ address: "10.0.0.5/24", interface: 0 }] };
 * assert.deepEqual(podFromPrevResult(prev, "eth0"),
 *   { podMac: "aa:bb:cc:dd:ee:ff", addresses: ["10.0.0.5/24"] });
 * ```
 */
export function podFromPrevResult(
  prev: Record<string, unknown> | undefined,
  ifName: string,
): { podMac: string; addresses: string[] } | undefined {
  if (prev === undefined) return undefined;
  try {
    const r = parseResult(prev);
    const ifaces = r.interfaces ?? [];
    const idx = ifaces.findIndex((i) => i.name === ifName && i.sandbox);
    const mac = ifaces[idx]?.mac;
    if (mac === undefined) return undefined;
    const addresses = (r.ips ?? []).filter((ip) =>
      ip.interface === undefined || ip.interface === idx
    ).map((ip) => ip.address);
    return { podMac: mac, addresses };
  } catch {
    return undefined;
  }
}

/**
 * Compares the pod end with the record: the interface, its MAC, link state,
 * addresses and the routes of the recorded result. `more` checks further
 * inside the pod's netns while it is open.
 *
 * @param kernel The kernel port.
 * @param spec The endpoint record, its netns path, more checks.
 * @returns One line per problem (empty when all is in place).
 */
export function checkPodEnd(
  kernel: Kernel,
  spec: {
    ep: EndpointRecord;
    netns: string;
    more?: (pod: KernelNs) => string[];
  },
): string[] {
  const { ep } = spec;
  const problems: string[] = [];
  let pod: KernelNs;
  try {
    pod = kernel.netns(spec.netns);
  } catch (err) {
    problems.push(
      `netns "${spec.netns}" cannot be opened (${flattenCause(err)})`,
    );
    return problems;
  }
  using ns = pod;
  const link = ns.link(ep.ifName);
  if (link === undefined) {
    problems.push(`interface "${ep.ifName}" missing in "${spec.netns}"`);
    return problems;
  }
  if (link.mac !== ep.podMac) {
    problems.push(
      `interface "${ep.ifName}" has MAC ${link.mac}, not ${ep.podMac}`,
    );
  }
  if (!link.up) problems.push(`interface "${ep.ifName}" is down`);
  const have = new Set(ns.addrs(ep.ifName).map((a) => a.cidr));
  for (const a of ep.addresses) {
    if (!have.has(a)) problems.push(`address "${a}" missing on "${ep.ifName}"`);
  }
  const routes = ns.routes(ep.ifName);
  for (const r of ep.result.routes ?? []) {
    const hit = routes.some((x) =>
      x.dst === r.dst && (r.gw === undefined || x.gw === r.gw)
    );
    if (!hit) problems.push(`route "${r.dst}" via ${r.gw ?? "link"} missing`);
  }
  problems.push(...spec.more?.(ns) ?? []);
  return problems;
}
