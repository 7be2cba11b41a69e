/**
 * The pod side in bridge mode: a veth whose peer is created inside the pod's
 * netns under `CNI_IFNAME`, its addresses and routes, the static neighbour on
 * the bridge, the per-pod ebtables rules and the anti-spoofing rules of its
 * host veth; and their removal. The veth helpers shared with transparent
 * mode live here too.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  CniError,
  type IpConfig,
  PLUGIN_CODES,
  type Result,
  type Route,
} from "@vnet/cni";
import { looksLikeIpv6, stripPrefix } from "@vnet/address";
import { deferUndo } from "./_undo.ts";
import type { Ebtables, PrefetchedListing } from "./ebtables.ts";
import {
  arpReplyRule,
  canonicalMac,
  type EbtablesRule,
  ipOf,
  parsePodRule,
  parseSpoofRule,
  podDnatRule,
  spoofRules,
} from "./ebtables_rules.ts";
import type { Kernel, KernelNs, LinkState } from "./kernel.ts";
import { wrapKernel } from "./errors.ts";
import type {
  BridgeNetworkRecord,
  EndpointRecord,
  NetworkRecord,
} from "./state.ts";

const log = getLogger(["azure-vnet", "endpoint"]);

/** What a mode's endpoint creation needs. */
export interface CreateEndpointSpec<N extends NetworkRecord = NetworkRecord> {
  /** The network. */
  readonly network: N;
  /** `CNI_CONTAINERID`. */
  readonly containerId: string;
  /** `CNI_IFNAME`. */
  readonly ifName: string;
  /** `CNI_NETNS`. */
  readonly netns: string;
  /** The host veth name. */
  readonly hostVeth: string;
  /** The MTU of both ends. */
  readonly mtu: number;
  /** The IPAM result (abbreviated). */
  readonly ipam: Result;
  /** The ebtables `nat` table, listed while IPAM ran. */
  readonly listing?: PrefetchedListing;
  /**
   * Bridge mode: install the anti-spoofing rules of the host veth
   * (`spoofRules()`; config `spoofCheck`, default true).
   */
  readonly spoofCheck?: boolean;
}

/** Kernel, host handle and ebtables. */
export interface EndpointContext {
  /** Opens netns handles. */
  readonly kernel: Kernel;
  /** The host netns. */
  readonly host: KernelNs;
  /** The ebtables driver. */
  readonly ebtables: Ebtables;
}

/** What a pod's ebtables rules are made of. */
export interface PodRulesSpec {
  /** The pod interface's MAC. */
  readonly podMac: string;
  /** The pod's addresses (CIDRs). */
  readonly addresses: readonly string[];
  /** The pod's host veth. */
  readonly hostVeth: string;
  /**
   * True when the endpoint has the anti-spoofing rules of its host veth
   * (recorded by ADD; absent in records of earlier versions and of pods
   * the Go azure-vnet made, which have none).
   */
  readonly spoofCheck?: boolean | undefined;
}

/**
 * The per-pod ebtables rules of an endpoint: an ARP reply and an IPv4 DNAT
 * rule per IPv4 address, then, when it has them, the anti-spoofing rules of
 * its host veth (`spoofRules()` of `ebtables_rules.ts`).
 *
 * @param master The master interface.
 * @param ep The pod MAC, addresses, host veth, and whether it has the
 * anti-spoofing rules.
 * @returns The rules, in the order ADD appends them.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { podRules } from "./endpoint.ts";
 * const ep = {
 *   podMac: "02:00:00:00:00:05",
 *   addresses: ["10.0.0.5/24"],
 *   hostVeth: "azv0123456789a",
 * };
 * assert.equal(podRules("eth0", ep).length, 2);
 * assert.equal(podRules("eth0", { ...ep, spoofCheck: true }).length, 7);
 * ```
 */
export function podRules(master: string, ep: PodRulesSpec): EbtablesRule[] {
  const rules: EbtablesRule[] = [];
  for (const cidr of ep.addresses) {
    const ip = stripPrefix(cidr);
    if (looksLikeIpv6(ip)) continue;
    rules.push(arpReplyRule({ ip, mac: ep.podMac }));
    rules.push(podDnatRule(master, { ip, mac: ep.podMac }));
  }
  if (ep.spoofCheck === true) rules.push(...spoofRules(ep.hostVeth, ep));
  return rules;
}

/**
 * A per-link IPv6 sysctl key; the slash form keeps dots in a link name.
 *
 * @param link The link.
 * @param leaf The key's last part, such as `accept_ra`.
 * @returns `net.ipv6.conf.<link>.<leaf>`, or the slash form.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ipv6LinkKey } from "./endpoint.ts";
 * assert.equal(ipv6LinkKey("eth0", "accept_ra"), "net.ipv6.conf.eth0.accept_ra");
 * assert.equal(ipv6LinkKey("eth0.5", "accept_ra"), "net/ipv6/conf/eth0.5/accept_ra");
 * ```
 */
export function ipv6LinkKey(link: string, leaf: string): string {
  return link.includes(".")
    ? `net/ipv6/conf/${link}/${leaf}`
    : `net.ipv6.conf.${link}.${leaf}`;
}

/**
 * Makes a bridge-mode pod interface ignore IPv6 router advertisements
 * (`accept_ra` 0, before it is up): bridge mode is IPv4 only, and an RA
 * from the fabric, or from another pod on the bridge, would otherwise give
 * the pod a global IPv6 address and a default route. A kernel or netns
 * without IPv6 has no such key: nothing to do.
 */
function ignoreRouterAdvertisements(pod: KernelNs, ifName: string): void {
  try {
    pod.setSysctl(ipv6LinkKey(ifName, "accept_ra"), "0");
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

function isDefaultDst(dst: string): boolean {
  return dst === "0.0.0.0/0" || dst === "::/0";
}

/**
 * The routes to install on a pod interface, without a default route of a
 * family whose default already leaves through another interface: a second
 * interface (`eth1`) must not take the pod's default route from the first,
 * whose DEL would otherwise leave the pod without one. It still gets its
 * address, and with it the subnet route. `shared` names more destinations
 * that only one interface may route (transparent mode's virtual gateway).
 *
 * @param pod The pod's netns.
 * @param spec The netns path, the interface, its routes, the shared ones.
 * @returns The routes this interface may take.
 */
export function withoutTakenDefaults(
  pod: KernelNs,
  spec: {
    netns: string;
    ifName: string;
    routes: Route[];
    shared?: readonly string[];
  },
): Route[] {
  const shared = new Set(spec.shared ?? []);
  function single(dst: string): boolean {
    return isDefaultDst(dst) || shared.has(dst);
  }
  const taken = new Set<string>();
  for (const l of pod.links()) {
    if (l.name === spec.ifName) continue;
    for (const r of pod.routes(l.name)) {
      if (single(r.dst) && (r.table ?? 254) === 254) taken.add(r.dst);
    }
  }
  return spec.routes.filter((r) => {
    if (!single(r.dst) || !taken.has(r.dst)) return true;
    log.info(
      "Pod {netns}: {ifName} gets no {dst} route, another interface has it",
      { netns: spec.netns, ifName: spec.ifName, dst: r.dst },
    );
    return false;
  });
}

/**
 * Tells whether `ifName` exists inside the netns at `netns`.
 *
 * @param kernel Opens the netns.
 * @param target The netns path and the interface name.
 * @returns True when present.
 * @throws {CniError} Code 103 when the netns cannot be opened (a missing
 * path is `Deno.errors.NotFound`, kept as the cause).
 */
export function podLinkExists(
  kernel: Kernel,
  target: { netns: string; ifName: string },
): boolean {
  let ns: KernelNs;
  try {
    ns = kernel.netns(target.netns);
  } catch (err) {
    throw wrapKernel(`Cannot open netns "${target.netns}"`, err);
  }
  using _ns = ns;
  return ns.link(target.ifName) !== undefined;
}

/**
 * What {@link createEndpoint} made: the endpoint's facts, with the pod's
 * addresses and routes as set (cmdAdd builds the CNI result from them).
 */
export type CreatedEndpoint =
  & Omit<EndpointRecord, "ipamRoute" | "result">
  & { ips: IpConfig[]; routes: Route[] };

/**
 * The IPAM result's addresses, copied; at least one.
 *
 * @param spec The endpoint.
 * @returns The addresses.
 * @throws {CniError} 109 when the IPAM returned none.
 */
export function endpointIps(spec: CreateEndpointSpec): IpConfig[] {
  const ips = (spec.ipam.ips ?? []).map((ip) => ({ ...ip }));
  if (ips.length === 0) {
    throw new CniError(
      PLUGIN_CODES.delegateFailed,
      `IPAM returned no address for "${spec.containerId}"`,
    );
  }
  return ips;
}

/**
 * Pushes the undo of an endpoint step, named after the endpoint.
 *
 * @param stack The endpoint's undo stack.
 * @param spec The endpoint.
 * @returns `undo(what, run)`.
 */
export function endpointUndo(
  stack: AsyncDisposableStack,
  spec: CreateEndpointSpec,
): (what: string, run: () => Promise<unknown> | unknown) => void {
  return (what, run) =>
    deferUndo(stack, {
      what: `${what} (endpoint "${spec.containerId}/${spec.ifName}")`,
      run,
    });
}

/**
 * The endpoint's two ends, which it has just made: the host veth and the
 * pod interface (with `pod`, a handle on the pod's netns).
 *
 * @param ns The node's (or the pod's) netns.
 * @param spec The endpoint; `pod: true` for the pod end.
 * @returns The link.
 * @throws {Deno.errors.NotFound} When it vanished.
 */
export function endpointEnd(
  ns: KernelNs,
  spec: CreateEndpointSpec & { pod?: boolean },
): LinkState {
  const name = spec.pod === true ? spec.ifName : spec.hostVeth;
  const link = ns.link(name);
  if (link !== undefined) return link;
  throw new Deno.errors.NotFound(
    spec.pod === true
      ? `Pod interface "${name}" vanished from "${spec.netns}"`
      : `Host veth "${name}" vanished`,
  );
}

/**
 * What an endpoint creation made, from its spec and what the kernel gave.
 *
 * @param spec The endpoint.
 * @param made The MACs of both ends, the pod's addresses and routes, and
 * whether the host veth got the anti-spoofing rules.
 * @returns The endpoint's facts.
 */
export function createdEndpoint(
  spec: CreateEndpointSpec,
  made: {
    hostMac: string;
    podMac: string;
    ips: IpConfig[];
    routes: Route[];
    spoofCheck?: boolean;
  },
): CreatedEndpoint {
  return {
    network: spec.network.name,
    containerId: spec.containerId,
    ifName: spec.ifName,
    netns: spec.netns,
    hostVeth: spec.hostVeth,
    hostMac: made.hostMac,
    podMac: made.podMac,
    mtu: spec.mtu,
    addresses: made.ips.map((ip) => ip.address),
    ips: made.ips,
    routes: made.routes,
    ...(made.spoofCheck === true ? { spoofCheck: true } : {}),
  };
}

/**
 * Creates the veth: the host end in the node, the peer directly in the pod
 * under `CNI_IFNAME`; its deletion is pushed on the undo stack.
 *
 * @param host The node's netns.
 * @param spec The endpoint.
 * @param options `undo`: pushes an undo step.
 * @throws {CniError} 105 when `ifName` exists in the pod.
 */
export function addEndpointVeth(
  host: KernelNs,
  spec: CreateEndpointSpec,
  { undo }: { undo: (what: string, run: () => unknown) => void },
): void {
  try {
    host.addVeth({
      name: spec.hostVeth,
      peerName: spec.ifName,
      peerNetns: spec.netns,
      mtu: spec.mtu,
    });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new CniError(
        PLUGIN_CODES.interfaceExists,
        `Interface "${spec.ifName}" already exists in netns "${spec.netns}"`,
        { cause: err },
      );
    }
    throw err;
  }
  undo(`delete veth "${spec.hostVeth}"`, () => host.delLink(spec.hostVeth));
}

/**
 * Creates a bridge-mode endpoint; every step is rolled back if a later one
 * fails. The host veth must not exist (cmdAdd removes a leftover one first).
 *
 * @param ctx Kernel, host handle, ebtables.
 * @param spec The endpoint.
 * @returns What was made.
 * @throws {CniError} 105 when `ifName` exists in the pod, 103, 104.
 */
export async function createBridgeEndpoint(
  ctx: EndpointContext,
  spec: CreateEndpointSpec<BridgeNetworkRecord>,
): Promise<CreatedEndpoint> {
  const { host, ebtables } = ctx;
  const net = spec.network;
  const ips = endpointIps(spec);
  await using stack = new AsyncDisposableStack();
  const undo = endpointUndo(stack, spec);
  try {
    addEndpointVeth(host, spec, { undo });
    host.setMaster(spec.hostVeth, net.bridge);
    host.setHairpin(spec.hostVeth, { on: true });
    host.setUp(spec.hostVeth);
    const hostLink = endpointEnd(host, spec);
    let routes: Route[] = spec.ipam.routes !== undefined &&
        spec.ipam.routes.length > 0
      ? spec.ipam.routes.map((r) => ({ ...r }))
      : [{ dst: "0.0.0.0/0", gw: net.gateway }];
    let podMac: string;
    {
      using pod = ctx.kernel.netns(spec.netns);
      podMac = endpointEnd(pod, { ...spec, pod: true }).mac;
      routes = withoutTakenDefaults(pod, { ...spec, routes });
      pod.setUp("lo");
      ignoreRouterAdvertisements(pod, spec.ifName);
      for (const ip of ips) pod.addrAdd(spec.ifName, ip.address);
      pod.setUp(spec.ifName);
      for (const r of routes) {
        const gw = r.gw ?? ips.find((ip) => ip.gateway !== undefined)?.gateway;
        pod.routeReplace({
          dst: r.dst,
          ...(gw === undefined ? {} : { gw }),
          link: spec.ifName,
        });
      }
    }
    const addresses = ips.map((ip) => ip.address);
    for (const cidr of addresses) {
      const ip = stripPrefix(cidr);
      host.neighSet(net.bridge, { ip, mac: podMac });
      undo(
        `delete neighbour "${ip}" on "${net.bridge}"`,
        () => host.neighDel(net.bridge, ip),
      );
    }
    // Rules for these addresses that point to another MAC are stale: an
    // interrupted ADD or DEL left them (the address is ours now). So are
    // anti-spoofing rules of this host veth that are not ours: an earlier
    // attachment with this name left them (they would drop the new pod's
    // frames, which carry another MAC).
    const v4 = new Set(
      addresses.map((a) => stripPrefix(a)).filter((ip) =>
        !looksLikeIpv6(ip) && ip !== net.primaryIp
      ),
    );
    const spoofCheck = spec.spoofCheck !== false;
    const { added } = await ebtables.replaceAll(
      podRules(net.master, {
        podMac,
        addresses,
        hostVeth: spec.hostVeth,
        spoofCheck,
      }),
      {
        obsolete: (listed) => {
          if (listed.chain !== "PREROUTING") return false;
          if (listed.args.includes(spec.hostVeth)) {
            return parseSpoofRule(listed.args)?.hostVeth === spec.hostVeth;
          }
          // Only a rule that names one of these addresses (a listing may
          // print `/32`) can be stale: no parse for the other pods' rules.
          if (!listed.args.some((a) => v4.has(ipOf(a)))) return false;
          const r = parsePodRule(listed.args);
          return r !== undefined && v4.has(r.ip) &&
            r.mac !== canonicalMac(podMac);
        },
        ...(spec.listing === undefined ? {} : { prefetched: spec.listing }),
      },
    );
    if (added.length > 0) {
      undo("remove pod ebtables rules", () => ebtables.removeAll(added));
    }
    stack.move();
    return createdEndpoint(spec, {
      hostMac: hostLink.mac,
      podMac,
      ips,
      routes,
      spoofCheck,
    });
  } catch (err) {
    throw wrapKernel(
      `Cannot create endpoint "${spec.containerId}/${spec.ifName}"`,
      err,
    );
  }
}

/** What an endpoint's removal removes. */
export interface DeleteEndpointSpec<N extends NetworkRecord = NetworkRecord> {
  /** The host veth name (derived, so known without state). */
  readonly hostVeth: string;
  /** The network, when recorded. */
  readonly network: N | undefined;
  /**
   * The pod MAC and addresses, when known (record or prevResult), and
   * whether its host veth has the anti-spoofing rules (the record's
   * `spoofCheck`).
   */
  readonly pod:
    | { podMac: string; addresses: string[]; spoofCheck?: boolean | undefined }
    | undefined;
  /**
   * Work to overlap with the kernel's wait for the veth's deletion (DEL:
   * the IPAM release), started once nothing keyed by the pod's addresses
   * (neighbours, rules) is left, and never when their removal failed (the
   * address stays held for the retry); its failures follow the removal's.
   * A driver that does not start it leaves it to {@link deleteEndpoint} of
   * `mode.ts`, which runs it after a removal that succeeded.
   */
  readonly alongside?: () => Promise<unknown[]>;
}

/**
 * Deletes the bridge neighbour of a pod's address when it still names the
 * pod's MAC; absent is fine. A neighbour with another MAC belongs to the
 * address's new owner (the address went back to the IPAM before a DEL that
 * failed later was retried), and stays. The kernel deletes a neighbour by
 * address only, so a new owner's `neighSet` between the look and the
 * deletion would still lose it; its window is microseconds, and it needs
 * the address handed out while this DEL runs.
 *
 * @param host The node's netns.
 * @param spec The bridge, the address (no prefix), the pod's MAC.
 * @returns True when deleted, false when absent or another pod's.
 */
function deletePodNeighbour(
  host: KernelNs,
  spec: { bridge: string; ip: string; podMac: string },
): boolean {
  const mac = host.neighMac(spec.bridge, spec.ip);
  if (mac === undefined) return false;
  if (canonicalMac(mac) !== canonicalMac(spec.podMac)) {
    log.info(
      "Neighbour {ip} on {bridge} is {mac}, not {podMac}: another pod's, kept",
      { ...spec, mac },
    );
    return false;
  }
  host.neighDel(spec.bridge, spec.ip);
  return true;
}

/**
 * Removes a bridge-mode endpoint's host side: veth (which takes the pod end
 * along), neighbours that still name the pod's MAC, per-pod rules (the
 * anti-spoofing rules too, when the record says it has them). Without
 * a network only the veth goes. Absent objects are fine; independent
 * failures are collected.
 *
 * The kernel's wait for the veth (RCU grace periods, about 20 ms) is the
 * long pole: the neighbours go first (the handle's socket is busy while
 * the veth goes), then the veth's deletion starts on a blocking thread,
 * then the rules' exec and, once the neighbours and rules are gone,
 * `alongside` run while the kernel waits. When either removal failed,
 * `alongside` does not run.
 *
 * @param ctx Kernel, host handle, ebtables.
 * @param spec What to remove, and what to run alongside.
 * @returns The failures (empty on success), in the order veth, neighbours,
 * rules, then `alongside`'s.
 */
export async function deleteBridgeEndpoint(
  ctx: EndpointContext,
  spec: DeleteEndpointSpec<BridgeNetworkRecord>,
): Promise<unknown[]> {
  const { host, ebtables } = ctx;
  const { network, pod } = spec;
  const neighbours: unknown[] = [];
  if (network !== undefined && pod !== undefined) {
    for (const cidr of pod.addresses) {
      const ip = stripPrefix(cidr);
      try {
        deletePodNeighbour(host, {
          bridge: network.bridge,
          ip,
          podMac: pod.podMac,
        });
      } catch (err) {
        neighbours.push(wrapKernel(`Cannot delete neighbour "${ip}"`, err));
      }
    }
  }
  const veth = (async (): Promise<unknown[]> => {
    try {
      await host.delLink(spec.hostVeth);
      return [];
    } catch (err) {
      return [wrapKernel(`Cannot delete veth "${spec.hostVeth}"`, err)];
    }
  })();
  const rules: Promise<unknown[]> = network === undefined || pod === undefined
    ? Promise.resolve([])
    : ebtables.removeAll(
      podRules(network.master, { ...pod, hostVeth: spec.hostVeth }),
    ).then(
      () => [],
      (err: unknown) => [err],
    );
  // The address goes back only once its neighbours and rules are gone: a
  // concurrent ADD that got it would otherwise race this DEL's removal of
  // them, and after a failed one the retry would find them the new owner's.
  // The veth's deletion may still fail after the release: the retry then
  // deletes the veth and leaves what the new owner made (see above).
  const alongside = rules.then((r) =>
    r.length === 0 && neighbours.length === 0 ? spec.alongside?.() ?? [] : []
  );
  const [v, r, a] = await Promise.all([veth, rules, alongside]);
  return [...v, ...neighbours, ...r, ...a];
}
