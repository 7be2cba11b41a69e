/**
 * Transparent (routed) mode as a {@link ModeDriver}: no bridge and no
 * ebtables. The master NIC keeps its addresses and routes and the node
 * routes for its pods:
 *
 * - in the pod, `CNI_IFNAME` gets the VNET address, a route
 *   `169.254.1.1/32 dev eth0` to a virtual gateway, `default via
 *   169.254.1.1` (in place of the on-link subnet route), and a permanent
 *   neighbour for 169.254.1.1 with the host veth's MAC;
 * - on the node, a `/32` route for the pod's address to its host veth,
 *   proxy ARP on the host veth, and IPv4 forwarding on (checked, set and
 *   logged when it was off, never turned off again: see
 *   `teardownNetwork`).
 *
 * An IPv6 address (dual-stack) gets the same: in the pod a permanent
 * neighbour for the link-local gateway `fe80::1234:5678:9abc` (Azure's) and
 * `default via` it in place of the /64 route (an interface without the
 * default route, `eth1`, routes its /64 via it); on the node a `/128` route,
 * proxy NDP on the host veth and IPv6 forwarding (set and logged when off,
 * never turned off again). No address of either veth end runs DAD: a
 * point-to-point link has no duplicates, and a tentative address would
 * stall the first packets (see `addLinkLocal()`).
 *
 * Every per-pod object on the node hangs off the host veth, so deleting the
 * veth removes them all.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { CniError, CODES, type IpConfig, type Route } from "@vnet/cni";
import {
  contains,
  eui64LinkLocal,
  looksLikeIpv6,
  networkOf,
  stripPrefix,
} from "@vnet/address";
import {
  addEndpointVeth,
  createdEndpoint,
  endpointEnd,
  endpointIps,
  endpointUndo,
  ipv6LinkKey,
  withoutTakenDefaults,
} from "./endpoint.ts";
import { wrapKernel } from "./errors.ts";
import type { KernelNs, LinkState } from "./kernel.ts";
import {
  confirmLeftovers,
  findLeftovers,
  LEFTOVER_GRACE_MS,
  transparentVethClaim,
} from "./leftovers.ts";
import type { ModeDriver } from "./mode.ts";
import { HOST_VETH_PREFIX } from "./names.ts";
import { findMaster, refuseSharedMaster } from "./network.ts";
import { checkPodEnd } from "./pod_end.ts";
import type { NetworkRecord, TransparentNetworkRecord } from "./state.ts";

const log = getLogger(["azure-vnet", "transparent"]);

/** The pods' virtual IPv4 gateway (link-local, never on the wire). */
export const VIRTUAL_GATEWAY_V4 = "169.254.1.1";

/** The pods' virtual IPv6 gateway: a link-local address, Azure's. */
export const VIRTUAL_GATEWAY_V6 = "fe80::1234:5678:9abc";

/** The pod's route to the virtual IPv4 gateway. */
const GATEWAY_ROUTE = `${VIRTUAL_GATEWAY_V4}/32`;

/** The node's IPv4 forwarding switch. */
export const IPV4_FORWARDING = "net.ipv4.ip_forward";

/** The node's IPv6 forwarding switch. */
export const IPV6_FORWARDING = "net.ipv6.conf.all.forwarding";

/** What transparent mode plumbs per address family. */
interface Family {
  /** The virtual gateway the pod routes through. */
  readonly gateway: string;
  /** The default route's destination. */
  readonly defaultDst: string;
  /** The prefix length of the node's route to a pod address. */
  readonly hostPrefix: number;
  /** The node's forwarding switch. */
  readonly forwarding: string;
  /** The host veth's proxy switch (ARP, NDP), and its name for messages. */
  readonly proxy: { key: (link: string) => string; name: string };
}

const V4: Family = {
  gateway: VIRTUAL_GATEWAY_V4,
  defaultDst: "0.0.0.0/0",
  hostPrefix: 32,
  forwarding: IPV4_FORWARDING,
  proxy: { key: (l) => proxyArpKey(l), name: "proxy ARP" },
};

const V6: Family = {
  gateway: VIRTUAL_GATEWAY_V6,
  defaultDst: "::/0",
  hostPrefix: 128,
  forwarding: IPV6_FORWARDING,
  proxy: { key: (l) => `net.ipv6.conf.${l}.proxy_ndp`, name: "proxy NDP" },
};

function familyOf(address: string): Family {
  return looksLikeIpv6(address) ? V6 : V4;
}

/** The families of some addresses, IPv4 first, each once. */
function familiesOf(addresses: readonly string[]): Family[] {
  return [V4, V6].filter((f) => addresses.some((a) => familyOf(a) === f));
}

/** The node's route to a pod address. */
function hostRouteDst(address: string): string {
  return `${stripPrefix(address)}/${familyOf(address).hostPrefix}`;
}

/**
 * The proxy-ARP sysctl of a link.
 *
 * @param link The link name.
 * @returns `net.ipv4.conf.<link>.proxy_arp`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { proxyArpKey } from "./transparent_mode.ts";
 * assert.equal(proxyArpKey("azv0123"), "net.ipv4.conf.azv0123.proxy_arp");
 * ```
 */
export function proxyArpKey(link: string): string {
  return `net.ipv4.conf.${link}.proxy_arp`;
}

/**
 * The record as a transparent-mode one.
 *
 * @param net A network record.
 * @returns The same record, typed.
 * @throws {TypeError} When it is of another mode.
 */
function asTransparent(net: NetworkRecord): TransparentNetworkRecord {
  if (net.mode !== "transparent") {
    throw new TypeError(
      `Cannot use network "${net.name}" in transparent mode: it is in ${net.mode} mode`,
    );
  }
  return net;
}

/**
 * Turns a family's forwarding on in the node's namespace when it is off,
 * and logs that it did. Nothing turns it off again (see
 * `teardownNetwork`).
 *
 * @param host The node's netns.
 * @param spec The network that needs it (for the log), the switch.
 */
function ensureForwarding(
  host: KernelNs,
  spec: { network: string; key: string },
): void {
  const was = host.sysctl(spec.key);
  if (was === "1") return;
  host.setSysctl(spec.key, "1");
  const fields = { name: spec.network, was: was ?? "unknown", key: spec.key };
  if (spec.key === IPV4_FORWARDING) {
    log.info(
      "Network {name}: IPv4 forwarding was {was} on the node; set {key}=1 (it stays on)",
      fields,
    );
  } else {
    log.info(
      "Network {name}: IPv6 forwarding was {was} on the node; set {key}=1 (it stays on)",
      fields,
    );
  }
}

/**
 * The pod's routes: the virtual IPv4 gateway's `/32` first, then the IPAM's
 * routes of each family the pod has (a default route when it gave none)
 * through that family's virtual gateway.
 */
function podRoutes(
  ipamRoutes: readonly Route[] | undefined,
  families: readonly Family[],
): Route[] {
  const out: Route[] = families.includes(V4) ? [{ dst: GATEWAY_ROUTE }] : [];
  for (const f of families) {
    const own = (ipamRoutes ?? []).filter((r) => familyOf(r.dst) === f);
    const through = own.length > 0 ? own : [{ dst: f.defaultDst }];
    out.push(...through.map((r) => ({ ...r, gw: f.gateway })));
  }
  return out;
}

/**
 * The pod's routes to its IPv6 subnets through the virtual gateway, for an
 * interface that does not get the IPv6 default route (a second one,
 * `CNI_IFNAME` eth1, while eth0 has it). Its on-link /64 goes in every case
 * ({@link viaGateway}): the host veth answers neighbour solicitations only
 * for proxy entries, which transparent mode does not make, so the pod's
 * solicitations for the subnet's addresses would go unanswered. A subnet
 * route another interface of the pod already has stays with it.
 */
function v6SubnetRoutes(
  pod: KernelNs,
  spec: {
    netns: string;
    ifName: string;
    routes: readonly Route[];
    addresses: readonly string[];
  },
): Route[] {
  if (spec.routes.some((r) => r.dst === V6.defaultDst)) return [];
  const subnets = [
    ...new Set(spec.addresses.filter(looksLikeIpv6).map(networkOf)),
  ].filter((dst) => !spec.routes.some((r) => r.dst === dst));
  return withoutTakenDefaults(pod, {
    ...spec,
    routes: subnets.map((dst) => ({ dst, gw: V6.gateway })),
    shared: subnets,
  });
}

/**
 * Whether a family's traffic of this interface leaves through its virtual
 * gateway, the subnet's included: always for IPv6 (its gateway's permanent
 * neighbour is on every interface, and proxy NDP answers no subnet
 * address), for IPv4 when the interface routes through 169.254.1.1 (a
 * second interface keeps its on-link subnet, which proxy ARP serves).
 */
function viaGateway(f: Family, routes: readonly Route[]): boolean {
  return f === V6 || routes.some((r) => r.gw === f.gateway);
}

/** What is wrong with the pod's neighbour entries for the virtual gateways. */
function gatewayNeighbourProblems(
  pod: KernelNs,
  spec: { ifName: string; hostMac: string; families: readonly Family[] },
): string[] {
  const problems: string[] = [];
  const neighs = pod.neighs(spec.ifName);
  for (const { gateway } of spec.families) {
    const n = neighs.find((x) => x.ip === gateway);
    if (n === undefined) {
      problems.push(`neighbour "${gateway}" on "${spec.ifName}" missing`);
    } else if (n.mac !== spec.hostMac || !n.permanent) {
      problems.push(
        `neighbour "${gateway}" on "${spec.ifName}" is ${
          n.mac ?? "incomplete"
        }${n.permanent ? "" : " (not permanent)"}, not ${spec.hostMac}`,
      );
    }
  }
  return problems;
}

/** Tells the kernel to make no link-local address on a link (before up). */
function withoutAutoLinkLocal(ns: KernelNs, link: string): void {
  ns.setSysctl(ipv6LinkKey(link, "addr_gen_mode"), "1");
}

/**
 * Adds a veth end's link-local address (the EUI-64 one the kernel would
 * make) without DAD. The kernel skips duplicate address detection only for
 * an address added with nodad, or when net.ipv6.conf.all.accept_dad and the
 * link's are both 0; a node (or a pod netns inheriting it) may set "all" to
 * 1. A point-to-point link has no duplicates, and while the host veth's
 * link-local is tentative the node cannot solicit the pod (the first
 * packets stall for a second or two). So neither end gets a kernel-made
 * link-local ({@link withoutAutoLinkLocal}): each gets this one, and the pod
 * its addresses, with nodad.
 */
function addLinkLocal(ns: KernelNs, link: LinkState): void {
  ns.addrAdd(link.name, `${eui64LinkLocal(link.mac)}/64`, { nodad: true });
}

/** The driver of transparent mode. */
export const TRANSPARENT_MODE: ModeDriver = {
  mode: "transparent",

  refuseAddresses() {
    // Both families are plumbed.
  },

  lost(host, record) {
    const net = asTransparent(record);
    if (host.link(net.master) === undefined) {
      return `master "${net.master}" is gone`;
    }
    return host.sysctl(IPV4_FORWARDING) === "1"
      ? undefined
      : "IPv4 forwarding is off";
  },

  statusProblem(host, record) {
    const net = asTransparent(record);
    const master = host.link(net.master);
    if (master === undefined) return `master "${net.master}" is missing`;
    return master.masterIndex === undefined
      ? undefined
      : `master "${net.master}" is enslaved to a bridge`;
  },

  hostRules() {
    return [];
  },

  async createNetwork(ctx, spec) {
    const { kernel } = ctx;
    const master = findMaster(kernel, {
      master: spec.master,
      subnet: spec.subnet,
      bridge: "",
    });
    refuseSharedMaster(master, {
      name: spec.name,
      mode: "transparent",
      others: spec.others,
    });
    if (master.kind === "bridge" || master.masterIndex !== undefined) {
      throw new CniError(
        CODES.invalidConfig,
        `Cannot create network "${spec.name}" in transparent mode on master "${master.name}": it ${
          master.kind === "bridge" ? "is a bridge" : "is enslaved to a bridge"
        }, and transparent mode routes through the NIC itself`,
      );
    }
    const primary = kernel.addrs(master.name).find((a) =>
      a.family === 4 && a.scope === 0
    );
    try {
      // Never turned off again, not even when this ADD fails: see
      // teardownNetwork.
      ensureForwarding(kernel, { network: spec.name, key: IPV4_FORWARDING });
      const net: TransparentNetworkRecord = {
        name: spec.name,
        mode: "transparent",
        master: master.name,
        masterMac: master.mac,
        masterMtu: master.mtu,
        subnet: spec.subnet,
        gateway: spec.gateway,
        ...(primary === undefined
          ? {}
          : { primaryIp: stripPrefix(primary.cidr) }),
        createdAt: new Date().toISOString(),
      };
      log.info(
        "Creating network {name}: transparent mode, master {master}, subnet {subnet}",
        { name: net.name, master: net.master, subnet: net.subnet },
      );
      await spec.commit(net);
      return net;
    } catch (err) {
      log.error("Creating network {name} failed, rolling back: {err}", {
        name: spec.name,
        err: String(err),
      });
      throw wrapKernel(`Cannot create network "${spec.name}"`, err);
    }
  },

  teardownNetwork(_ctx, spec) {
    // IPv4 forwarding stays on, as the Go azure-vnet leaves it. Turning
    // net.ipv4.ip_forward off is no restore: the kernel then sets every
    // interface's forwarding to 0 and all.accept_redirects to 1, and
    // whatever started relying on forwarding since (kube-proxy, docker,
    // another network of ours) breaks. Nor can it be known who needs it.
    const net = asTransparent(spec.net);
    // A record of an earlier version says whether this network turned it on.
    const was = net.forwardingSet === true
      ? " (this network had turned it on)"
      : "";
    const note =
      `network ${net.name}: IPv4 forwarding (${IPV4_FORWARDING}) stays on${was}: turning it off would switch forwarding off on every interface and accept ICMP redirects again, which others on the node may rely on; set it to 0 by hand if the node must not forward`;
    log.info("Teardown: {note}", { note });
    return Promise.resolve([note]);
  },

  async createEndpoint(ctx, spec) {
    const { host } = ctx;
    asTransparent(spec.network);
    const ips = endpointIps(spec);
    const families = familiesOf(ips.map((ip) => ip.address));
    await using stack = new AsyncDisposableStack();
    const undo = endpointUndo(stack, spec);
    try {
      if (families.includes(V6)) {
        ensureForwarding(host, {
          network: spec.network.name,
          key: IPV6_FORWARDING,
        });
      }
      addEndpointVeth(host, spec, { undo });
      const v6 = families.includes(V6);
      if (v6) withoutAutoLinkLocal(host, spec.hostVeth);
      host.setUp(spec.hostVeth);
      const hostLink = endpointEnd(host, spec);
      if (v6) addLinkLocal(host, hostLink);
      for (const f of families) host.setSysctl(f.proxy.key(spec.hostVeth), "1");
      let routes: Route[];
      let podMac: string;
      {
        using pod = ctx.kernel.netns(spec.netns);
        const podLink = endpointEnd(pod, { ...spec, pod: true });
        podMac = podLink.mac;
        routes = withoutTakenDefaults(pod, {
          ...spec,
          routes: podRoutes(spec.ipam.routes, families),
          shared: [GATEWAY_ROUTE],
        });
        routes.push(...v6SubnetRoutes(pod, {
          ...spec,
          routes,
          addresses: ips.map((ip) => ip.address),
        }));
        pod.setUp("lo");
        if (v6) withoutAutoLinkLocal(pod, spec.ifName);
        for (const { address } of ips) {
          pod.addrAdd(spec.ifName, address, { nodad: looksLikeIpv6(address) });
        }
        pod.setUp(spec.ifName);
        if (v6) addLinkLocal(pod, podLink);
        for (const f of families) {
          pod.neighSet(spec.ifName, { ip: f.gateway, mac: hostLink.mac });
        }
        for (const ip of ips) {
          if (viaGateway(familyOf(ip.address), routes)) {
            // Everything leaves through the virtual gateway, the subnet too.
            pod.routeDel({ dst: networkOf(ip.address), link: spec.ifName });
          }
        }
        for (const r of routes) {
          pod.routeReplace({
            dst: r.dst,
            link: spec.ifName,
            ...(r.gw === undefined ? { scope: "link" } : { gw: r.gw }),
          });
        }
      }
      for (const ip of ips) {
        host.routeReplace({
          dst: hostRouteDst(ip.address),
          link: spec.hostVeth,
          scope: "link",
        });
      }
      stack.move();
      return createdEndpoint(spec, {
        hostMac: hostLink.mac,
        podMac,
        ips: ips.map((ip) => {
          const f = familyOf(ip.address);
          return viaGateway(f, routes) ? { ...ip, gateway: f.gateway } : ip;
        }),
        routes,
      });
    } catch (err) {
      throw wrapKernel(
        `Cannot create endpoint "${spec.containerId}/${spec.ifName}"`,
        err,
      );
    }
  },

  async deleteEndpoint(ctx, spec) {
    // The /32 route and proxy ARP go with the veth, the pod end too.
    try {
      await ctx.host.delLink(spec.hostVeth);
      return [];
    } catch (err) {
      return [wrapKernel(`Cannot delete veth "${spec.hostVeth}"`, err)];
    }
  },

  checkEndpoint(ctx, spec) {
    const { ep } = spec;
    asTransparent(spec.net);
    const families = familiesOf(ep.addresses);
    const problems: string[] = [];
    {
      using host = ctx.kernel.host();
      const veth = host.link(ep.hostVeth);
      if (veth === undefined) {
        problems.push(`host veth "${ep.hostVeth}" missing`);
      } else {
        if (veth.masterIndex !== undefined) {
          problems.push(`host veth "${ep.hostVeth}" is on a bridge`);
        }
        if (!veth.up) problems.push(`host veth "${ep.hostVeth}" is down`);
        if (veth.mac !== ep.hostMac) {
          problems.push(
            `host veth "${ep.hostVeth}" has MAC ${veth.mac}, not ${ep.hostMac}`,
          );
        }
        for (const f of families) {
          if (host.sysctl(f.proxy.key(ep.hostVeth)) !== "1") {
            problems.push(
              `${f.proxy.name} is off on host veth "${ep.hostVeth}"`,
            );
          }
        }
        if (
          families.includes(V6) &&
          !host.addrs(ep.hostVeth).some((a) =>
            a.family === 6 && a.scope === 253
          )
        ) {
          // Without one the node cannot solicit the pod (a link down and up
          // drops it, and addr_gen_mode 1 makes none again).
          problems.push(
            `host veth "${ep.hostVeth}" has no IPv6 link-local address`,
          );
        }
        const routes = host.routes(ep.hostVeth);
        for (const cidr of ep.addresses) {
          const dst = hostRouteDst(cidr);
          if (!routes.some((r) => r.dst === dst && r.gw === undefined)) {
            problems.push(
              `route "${dst}" to host veth "${ep.hostVeth}" missing`,
            );
          }
        }
      }
      for (const f of spec.scope === "endpoint" ? [] : families) {
        if (host.sysctl(f.forwarding) !== "1") {
          problems.push(
            `${f === V4 ? "IPv4" : "IPv6"} forwarding is off on the node`,
          );
        }
      }
    }
    problems.push(...checkPodEnd(ctx.kernel, {
      ep,
      netns: spec.netns,
      more: (pod) =>
        gatewayNeighbourProblems(pod, {
          ifName: ep.ifName,
          hostMac: ep.hostMac,
          families,
        }),
    }));
    return Promise.resolve(problems);
  },

  async leftovers(ctx, spec) {
    const { host } = ctx;
    const first = findLeftovers(host, spec);
    const subnet = spec.state.networks[spec.network]?.subnet ?? "";
    const unrouted = first.veths.filter((link) =>
      transparentVethClaim(host, { link, subnet }) === "unrouted"
    );
    if (unrouted.length === 0) return first;
    const ms = spec.graceMs ?? LEFTOVER_GRACE_MS;
    log.info(
      "Network {name}: veths {veths} route nothing yet (another network's ADD may be building them); looking again in {ms} ms",
      { name: spec.network, veths: unrouted, ms },
    );
    await (spec.sleep ?? ((t) => new Promise((r) => setTimeout(r, t))))(ms);
    return confirmLeftovers(first, findLeftovers(host, spec));
  },

  removeTraces(_ctx, traces) {
    // Nothing of a transparent endpoint outlives its veth.
    return Promise.resolve({
      errors: [],
      evidence: traces.podAttached || traces.held.length > 0,
    });
  },
};

/** A host veth of a transparent network, as the kernel shows it. */
export interface TransparentVeth {
  /** The host veth. */
  readonly link: LinkState;
  /** The pod addresses it routes, with their pools' prefixes. */
  readonly addresses: string[];
}

/**
 * The transparent network a node runs, read back from the kernel (for
 * state repair): the `azv*` veths on no bridge that route addresses of the
 * IPAM's pools (`/32`, `/128`), the subnet of the IPv4 pool they use, and
 * the master holding an address in it.
 *
 * @param kernel The host namespace.
 * @param spec The name to record, the IPAM's pools.
 * @returns The record and the veths, or why there is none.
 *
 * @example Usage
 * ```ts ignore
 * using host = netlinkKernel().host();
 * const found = transparentNetworkFromKernel(host, { name: "azure", pools });
 * ```
 */
export function transparentNetworkFromKernel(
  kernel: KernelNs,
  spec: {
    name: string;
    pools: readonly { subnet: string; gateway: string }[];
  },
): {
  network: TransparentNetworkRecord;
  veths: TransparentVeth[];
  problem?: undefined;
} | { network?: undefined; veths?: undefined; problem: string } {
  const poolOf = (ip: string) =>
    spec.pools.find((p) =>
      looksLikeIpv6(ip) === looksLikeIpv6(p.subnet) && contains(p.subnet, ip)
    );
  const veths: TransparentVeth[] = [];
  for (const link of kernel.links()) {
    if (
      !link.name.startsWith(HOST_VETH_PREFIX) || link.masterIndex !== undefined
    ) continue;
    const addresses = kernel.routes(link.name).flatMap((r) => {
      const [ip, len] = r.dst.split("/");
      const pool = ip === undefined ? undefined : poolOf(ip);
      const hostRoute = len === (looksLikeIpv6(r.dst) ? "128" : "32");
      return pool === undefined || !hostRoute || r.gw !== undefined
        ? []
        : [`${ip}/${pool.subnet.split("/")[1]}`];
    });
    if (addresses.length > 0) veths.push({ link, addresses });
  }
  const v4 = veths.flatMap((v) => v.addresses).find((a) => !looksLikeIpv6(a));
  const pool = v4 === undefined ? undefined : poolOf(stripPrefix(v4));
  if (pool === undefined) {
    return {
      problem:
        "no azv* veth on no bridge routes an IPv4 address of the IPAM's pools: no transparent network recorded",
    };
  }
  let master: LinkState;
  try {
    master = findMaster(kernel, {
      master: undefined,
      subnet: pool.subnet,
      bridge: "",
    });
  } catch (err) {
    return {
      problem: `transparent veths found, but ${
        err instanceof Error ? err.message : String(err)
      }: network not recorded`,
    };
  }
  const primary = kernel.addrs(master.name).find((a) =>
    a.family === 4 && a.scope === 0
  );
  return {
    network: {
      name: spec.name,
      mode: "transparent",
      master: master.name,
      masterMac: master.mac,
      masterMtu: master.mtu,
      subnet: pool.subnet,
      gateway: pool.gateway,
      ...(primary === undefined
        ? {}
        : { primaryIp: stripPrefix(primary.cidr) }),
      createdAt: new Date().toISOString(),
    },
    veths,
  };
}

/**
 * The CNI result transparent mode gives a pod with these addresses (state
 * repair).
 *
 * @param addresses The pod's addresses (CIDR).
 * @returns The addresses behind their virtual gateways and the routes.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { transparentRoutes } from "./transparent_mode.ts";
 * assert.deepEqual(transparentRoutes(["10.0.0.5/24"]).routes, [
 *   { dst: "169.254.1.1/32" },
 *   { dst: "0.0.0.0/0", gw: "169.254.1.1" },
 * ]);
 * ```
 */
export function transparentRoutes(
  addresses: readonly string[],
): { ips: IpConfig[]; routes: Route[] } {
  return {
    ips: addresses.map((address) => ({
      address,
      gateway: familyOf(address).gateway,
    })),
    routes: podRoutes(undefined, familiesOf(addresses)),
  };
}
