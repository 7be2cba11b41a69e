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
 *   logged when it was off).
 *
 * Every per-pod object on the node hangs off the host veth, so deleting the
 * veth removes them all.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { CniError, CODES, type Route } from "@vnet/cni";
import { looksLikeIpv6, networkOf, stripPrefix } from "@vnet/address";
import { deferUndo } from "./_undo.ts";
import {
  addEndpointVeth,
  createdEndpoint,
  endpointEnd,
  endpointIps,
  endpointUndo,
  withoutTakenDefaults,
} from "./endpoint.ts";
import { wrapKernel } from "./errors.ts";
import type { KernelNs } from "./kernel.ts";
import { findLeftovers } from "./leftovers.ts";
import type { ModeDriver } from "./mode.ts";
import { findMaster, refuseSharedMaster } from "./network.ts";
import { checkPodEnd } from "./pod_end.ts";
import type { NetworkRecord, TransparentNetworkRecord } from "./state.ts";

const log = getLogger(["azure-vnet", "transparent"]);

/** The pods' virtual IPv4 gateway (link-local, never on the wire). */
export const VIRTUAL_GATEWAY_V4 = "169.254.1.1";

/** The pod's route to the virtual gateway. */
const GATEWAY_ROUTE = `${VIRTUAL_GATEWAY_V4}/32`;

/** The node's IPv4 forwarding switch. */
export const IPV4_FORWARDING = "net.ipv4.ip_forward";

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
 * Turns IPv4 forwarding on in the node's namespace when it is off, and logs
 * that it did.
 *
 * @param host The node's netns.
 * @param network The network that needs it (for the log).
 * @returns True when it was off and is now on.
 */
function ensureForwarding(host: KernelNs, network: string): boolean {
  const was = host.sysctl(IPV4_FORWARDING);
  if (was === "1") return false;
  host.setSysctl(IPV4_FORWARDING, "1");
  log.info(
    "Network {name}: IPv4 forwarding was {was} on the node; set {key}=1",
    { name: network, was: was ?? "unknown", key: IPV4_FORWARDING },
  );
  return true;
}

/**
 * The pod's routes: the virtual gateway's `/32` first, then the IPAM's
 * IPv4 routes (a default route when it gave none) through that gateway.
 */
function podRoutes(ipamRoutes: readonly Route[] | undefined): Route[] {
  const v4 = (ipamRoutes ?? []).filter((r) => !looksLikeIpv6(r.dst));
  const through = v4.length > 0 ? v4 : [{ dst: "0.0.0.0/0" }];
  return [
    { dst: GATEWAY_ROUTE },
    ...through.map((r) => ({ ...r, gw: VIRTUAL_GATEWAY_V4 })),
  ];
}

/** What is wrong with the pod's neighbour entry for the virtual gateway. */
function gatewayNeighbourProblems(
  pod: KernelNs,
  spec: { ifName: string; hostMac: string },
): string[] {
  const n = pod.neighs(spec.ifName).find((x) => x.ip === VIRTUAL_GATEWAY_V4);
  if (n === undefined) {
    return [`neighbour "${VIRTUAL_GATEWAY_V4}" on "${spec.ifName}" missing`];
  }
  if (n.mac !== spec.hostMac || !n.permanent) {
    return [
      `neighbour "${VIRTUAL_GATEWAY_V4}" on "${spec.ifName}" is ${
        n.mac ?? "incomplete"
      }${n.permanent ? "" : " (not permanent)"}, not ${spec.hostMac}`,
    ];
  }
  return [];
}

/** The driver of transparent mode. */
export const TRANSPARENT_MODE: ModeDriver = {
  mode: "transparent",

  refuseAddresses(ips) {
    const v6 = ips.find((ip) => looksLikeIpv6(ip.address));
    if (v6 === undefined) return;
    throw new CniError(
      CODES.invalidConfig,
      `Cannot attach IPv6 address "${v6.address}": transparent mode plumbs IPv4 only so far (#15)`,
    );
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
    await using stack = new AsyncDisposableStack();
    try {
      const forwardingSet = ensureForwarding(kernel, spec.name);
      if (forwardingSet) {
        deferUndo(stack, {
          what: `turn IPv4 forwarding off again (network "${spec.name}")`,
          run: () => kernel.setSysctl(IPV4_FORWARDING, "0"),
        });
      }
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
        forwardingSet,
        createdAt: new Date().toISOString(),
      };
      log.info(
        "Creating network {name}: transparent mode, master {master}, subnet {subnet}",
        { name: net.name, master: net.master, subnet: net.subnet },
      );
      await spec.commit(net);
      stack.move();
      return net;
    } catch (err) {
      log.error("Creating network {name} failed, rolling back: {err}", {
        name: spec.name,
        err: String(err),
      });
      throw wrapKernel(`Cannot create network "${spec.name}"`, err);
    }
  },

  teardownNetwork(ctx, spec) {
    const net = asTransparent(spec.net);
    if (!net.forwardingSet) return Promise.resolve();
    const sharer = spec.others.find((o) => o.mode === "transparent");
    if (sharer !== undefined) {
      log.info(
        "Network {name}: IPv4 forwarding stays on for network {other}",
        { name: net.name, other: sharer.name },
      );
      return Promise.resolve();
    }
    try {
      ctx.kernel.setSysctl(IPV4_FORWARDING, "0");
    } catch (err) {
      return Promise.reject(
        wrapKernel(`Cannot turn IPv4 forwarding off again`, err),
      );
    }
    log.info("Network {name}: set {key}=0 again, as it was before", {
      name: net.name,
      key: IPV4_FORWARDING,
    });
    return Promise.resolve();
  },

  async createEndpoint(ctx, spec) {
    const { host } = ctx;
    asTransparent(spec.network);
    const ips = endpointIps(spec);
    TRANSPARENT_MODE.refuseAddresses(ips);
    await using stack = new AsyncDisposableStack();
    const undo = endpointUndo(stack, spec);
    try {
      addEndpointVeth(host, spec, { undo });
      host.setUp(spec.hostVeth);
      const hostLink = endpointEnd(host, spec);
      host.setSysctl(proxyArpKey(spec.hostVeth), "1");
      let routes: Route[];
      let podMac: string;
      {
        using pod = ctx.kernel.netns(spec.netns);
        podMac = endpointEnd(pod, { ...spec, pod: true }).mac;
        routes = withoutTakenDefaults(pod, {
          ...spec,
          routes: podRoutes(spec.ipam.routes),
          shared: [GATEWAY_ROUTE],
        });
        pod.setUp("lo");
        for (const ip of ips) pod.addrAdd(spec.ifName, ip.address);
        pod.setUp(spec.ifName);
        pod.neighSet(spec.ifName, {
          ip: VIRTUAL_GATEWAY_V4,
          mac: hostLink.mac,
        });
        if (routes.some((r) => r.dst === GATEWAY_ROUTE)) {
          // Everything leaves through the virtual gateway, the subnet too.
          for (const ip of ips) {
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
          dst: `${stripPrefix(ip.address)}/32`,
          link: spec.hostVeth,
          scope: "link",
        });
      }
      stack.move();
      const routed = routes.some((r) => r.gw !== undefined);
      return createdEndpoint(spec, {
        hostMac: hostLink.mac,
        podMac,
        ips: routed
          ? ips.map((ip) => ({ ...ip, gateway: VIRTUAL_GATEWAY_V4 }))
          : ips,
        routes,
      });
    } catch (err) {
      throw wrapKernel(
        `Cannot create endpoint "${spec.containerId}/${spec.ifName}"`,
        err,
      );
    }
  },

  deleteEndpoint(ctx, spec) {
    // The /32 route and proxy ARP go with the veth, the pod end too.
    try {
      ctx.host.delLink(spec.hostVeth);
      return Promise.resolve([]);
    } catch (err) {
      return Promise.resolve([
        wrapKernel(`Cannot delete veth "${spec.hostVeth}"`, err),
      ]);
    }
  },

  checkEndpoint(ctx, spec) {
    const { ep } = spec;
    asTransparent(spec.net);
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
        if (host.sysctl(proxyArpKey(ep.hostVeth)) !== "1") {
          problems.push(`proxy ARP is off on host veth "${ep.hostVeth}"`);
        }
        const routes = host.routes(ep.hostVeth);
        for (const cidr of ep.addresses) {
          const dst = `${stripPrefix(cidr)}/32`;
          if (!routes.some((r) => r.dst === dst && r.gw === undefined)) {
            problems.push(
              `route "${dst}" to host veth "${ep.hostVeth}" missing`,
            );
          }
        }
      }
      if (host.sysctl(IPV4_FORWARDING) !== "1") {
        problems.push("IPv4 forwarding is off on the node");
      }
    }
    problems.push(...checkPodEnd(ctx.kernel, {
      ep,
      netns: spec.netns,
      more: (pod) =>
        gatewayNeighbourProblems(pod, {
          ifName: ep.ifName,
          hostMac: ep.hostMac,
        }),
    }));
    return Promise.resolve(problems);
  },

  leftovers(ctx, spec) {
    return Promise.resolve(findLeftovers(ctx.host, spec));
  },

  removeTraces(_ctx, traces) {
    // Nothing of a transparent endpoint outlives its veth.
    return Promise.resolve({
      errors: [],
      evidence: traces.podAttached || traces.held > 0,
    });
  },
};
