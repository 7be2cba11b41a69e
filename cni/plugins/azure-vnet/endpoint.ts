/**
 * The pod side: a veth whose peer is created inside the pod's netns under
 * `CNI_IFNAME`, its addresses and routes, the static neighbour on the bridge
 * and the per-pod ebtables rules; and their removal.
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
  parsePodRule,
  podDnatRule,
  podRuleOf,
} from "./ebtables_rules.ts";
import type { Kernel, KernelNs } from "./kernel.ts";
import { wrapKernel } from "./errors.ts";
import type { EndpointRecord, NetworkRecord } from "./state.ts";

const log = getLogger(["azure-vnet", "endpoint"]);

/** What {@link createEndpoint} needs. */
export interface CreateEndpointSpec {
  /** The network. */
  readonly network: NetworkRecord;
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

/**
 * The per-pod ebtables rules of an endpoint: an ARP reply and an IPv4 DNAT
 * rule per IPv4 address.
 *
 * @param master The master interface.
 * @param ep The pod MAC and addresses.
 * @returns The rules.
 */
export function podRules(
  master: string,
  ep: { podMac: string; addresses: readonly string[] },
): EbtablesRule[] {
  const rules: EbtablesRule[] = [];
  for (const cidr of ep.addresses) {
    const ip = stripPrefix(cidr);
    if (looksLikeIpv6(ip)) continue;
    rules.push(arpReplyRule({ ip, mac: ep.podMac }));
    rules.push(podDnatRule(master, { ip, mac: ep.podMac }));
  }
  return rules;
}

function isDefaultDst(dst: string): boolean {
  return dst === "0.0.0.0/0" || dst === "::/0";
}

/**
 * The routes to install on a pod interface, without a default route of a
 * family whose default already leaves through another interface: a second
 * interface (`eth1`) must not take the pod's default route from the first,
 * whose DEL would otherwise leave the pod without one. It still gets its
 * address, and with it the subnet route.
 */
function withoutTakenDefaults(
  pod: KernelNs,
  spec: { netns: string; ifName: string; routes: Route[] },
): Route[] {
  const taken = new Set<string>();
  for (const l of pod.links()) {
    if (l.name === spec.ifName) continue;
    for (const r of pod.routes(l.name)) {
      if (isDefaultDst(r.dst) && (r.table ?? 254) === 254) taken.add(r.dst);
    }
  }
  return spec.routes.filter((r) => {
    if (!isDefaultDst(r.dst) || !taken.has(r.dst)) return true;
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
 * Creates the endpoint; every step is rolled back if a later one fails. The
 * host veth must not exist (cmdAdd removes a leftover one first).
 *
 * @param ctx Kernel, host handle, ebtables.
 * @param spec The endpoint.
 * @returns What was made.
 * @throws {CniError} 105 when `ifName` exists in the pod, 103, 104.
 */
export async function createEndpoint(
  ctx: EndpointContext,
  spec: CreateEndpointSpec,
): Promise<CreatedEndpoint> {
  const { host, ebtables } = ctx;
  const net = spec.network;
  const ips = (spec.ipam.ips ?? []).map((ip) => ({ ...ip }));
  if (ips.length === 0) {
    throw new CniError(
      PLUGIN_CODES.delegateFailed,
      `IPAM returned no address for "${spec.containerId}"`,
    );
  }
  await using stack = new AsyncDisposableStack();
  function undo(what: string, run: () => Promise<unknown> | unknown): void {
    deferUndo(stack, {
      what: `${what} (endpoint "${spec.containerId}/${spec.ifName}")`,
      run,
    });
  }
  try {
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
    host.setMaster(spec.hostVeth, net.bridge);
    host.setHairpin(spec.hostVeth, { on: true });
    host.setUp(spec.hostVeth);
    const hostLink = host.link(spec.hostVeth);
    if (hostLink === undefined) {
      throw new Deno.errors.NotFound(`Host veth "${spec.hostVeth}" vanished`);
    }
    let routes: Route[] = spec.ipam.routes !== undefined &&
        spec.ipam.routes.length > 0
      ? spec.ipam.routes.map((r) => ({ ...r }))
      : [{ dst: "0.0.0.0/0", gw: net.gateway }];
    let podMac: string;
    {
      using pod = ctx.kernel.netns(spec.netns);
      const podLink = pod.link(spec.ifName);
      if (podLink === undefined) {
        throw new Deno.errors.NotFound(
          `Pod interface "${spec.ifName}" vanished from "${spec.netns}"`,
        );
      }
      podMac = podLink.mac;
      routes = withoutTakenDefaults(pod, { ...spec, routes });
      pod.setUp("lo");
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
    // interrupted ADD or DEL left them (the address is ours now).
    const v4 = new Set(
      addresses.map((a) => stripPrefix(a)).filter((ip) =>
        !looksLikeIpv6(ip) && ip !== net.primaryIp
      ),
    );
    const { added } = await ebtables.replaceAll(
      podRules(net.master, { podMac, addresses }),
      {
        obsolete: (listed) => {
          if (listed.chain !== "PREROUTING") return undefined;
          const r = parsePodRule(listed.args);
          return r !== undefined && v4.has(r.ip) &&
              r.mac !== canonicalMac(podMac)
            ? podRuleOf(r)
            : undefined;
        },
        ...(spec.listing === undefined ? {} : { prefetched: spec.listing }),
      },
    );
    if (added.length > 0) {
      undo("remove pod ebtables rules", () => ebtables.removeAll(added));
    }
    stack.move();
    return {
      network: net.name,
      containerId: spec.containerId,
      ifName: spec.ifName,
      netns: spec.netns,
      hostVeth: spec.hostVeth,
      hostMac: hostLink.mac,
      podMac,
      mtu: spec.mtu,
      addresses,
      ips,
      routes,
    };
  } catch (err) {
    throw wrapKernel(
      `Cannot create endpoint "${spec.containerId}/${spec.ifName}"`,
      err,
    );
  }
}

/** What {@link deleteEndpoint} removes. */
export interface DeleteEndpointSpec {
  /** The host veth name (derived, so known without state). */
  readonly hostVeth: string;
  /** The network, when recorded. */
  readonly network: NetworkRecord | undefined;
  /** The pod MAC and addresses, when known (record or prevResult). */
  readonly pod: { podMac: string; addresses: string[] } | undefined;
}

/**
 * Removes an endpoint's host side: veth (which takes the pod end along),
 * neighbours, per-pod rules. Absent objects are fine; independent failures
 * are collected.
 *
 * @param ctx Kernel, host handle, ebtables.
 * @param spec What to remove.
 * @returns The failures (empty on success).
 */
export async function deleteEndpoint(
  ctx: EndpointContext,
  spec: DeleteEndpointSpec,
): Promise<unknown[]> {
  const { host, ebtables } = ctx;
  const errors: unknown[] = [];
  const { network, pod } = spec;
  // The rules go while the kernel deletes the veth: the ebtables-restore
  // exec and the veth's wait overlap. The errors keep their order: veth,
  // neighbours, rules.
  const rules = network === undefined || pod === undefined
    ? undefined
    : ebtables.removeAll(podRules(network.master, pod)).then(
      () => undefined,
      (err: unknown) => ({ err }),
    );
  try {
    await host.delLink(spec.hostVeth);
  } catch (err) {
    errors.push(wrapKernel(`Cannot delete veth "${spec.hostVeth}"`, err));
  }
  if (network !== undefined && pod !== undefined) {
    for (const cidr of pod.addresses) {
      const ip = stripPrefix(cidr);
      try {
        host.neighDel(network.bridge, ip);
      } catch (err) {
        errors.push(wrapKernel(`Cannot delete neighbour "${ip}"`, err));
      }
    }
  }
  const failed = await rules;
  if (failed !== undefined) errors.push(failed.err);
  return errors;
}
