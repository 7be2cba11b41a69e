/**
 * The host side of a network: find the master, create the bridge, move the
 * master's addresses and routes onto it, install the host ebtables rules;
 * the reverse (teardown); and reading a network back from the kernel
 * (state repair).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { CniError, CODES, PLUGIN_CODES } from "@vnet/cni";
import {
  formatIpv4,
  formatIpv4Cidr,
  inSubnet,
  ipv4Gateway,
  parseIpv4Cidr,
  stripPrefix,
} from "@vnet/address";
import { deferUndo } from "./_undo.ts";
import type { Ebtables } from "./ebtables.ts";
import {
  arpReplyRedirectRule,
  arpReplyRule,
  type EbtablesRule,
  masterSnatRule,
} from "./ebtables_rules.ts";
import { wrapKernel } from "./errors.ts";
import type {
  AddrState,
  KernelNs,
  LinkState,
  RouteState,
  SavedRoute,
} from "./kernel.ts";
import { HOST_VETH_PREFIX } from "./names.ts";
import type {
  BridgeNetworkRecord,
  NetworkMode,
  NetworkRecord,
} from "./state.ts";

const log = getLogger(["azure-vnet", "network"]);

/** True for routes the kernel makes for addresses (protocol kernel). */
function isKernelRoute(r: SavedRoute): boolean {
  return r.protocol === "kernel" || r.protocol === 2;
}

/**
 * What a network moves from its master to the bridge: the link's global
 * addresses and the routes that are not the kernel's own (nor IPv6
 * link-local or multicast).
 */
function linkLayout(
  kernel: KernelNs,
  link: string,
): { addrs: AddrState[]; routes: SavedRoute[] } {
  return {
    addrs: kernel.addrs(link).filter((a) => a.scope === 0),
    routes: kernel.routes(link).filter((r) =>
      !isKernelRoute(r) &&
      !(r.dst.startsWith("fe80:") || r.dst.startsWith("ff00:"))
    ).map(stripLink),
  };
}

/** What {@link createNetwork} needs. */
export interface CreateNetworkSpec {
  /** The network name. */
  readonly name: string;
  /** The bridge name. */
  readonly bridge: string;
  /** The configured master, or undefined to detect it. */
  readonly master: string | undefined;
  /** The subnet (CIDR) from the IPAM result. */
  readonly subnet: string;
  /** The subnet gateway. */
  readonly gateway: string;
  /**
   * Runs last, with the record (save the state); a failure in it rolls the
   * host setup back too.
   */
  readonly commit: (net: NetworkRecord) => Promise<void> | void;
  /**
   * The other recorded networks: one of another mode on the same master
   * refuses the creation (one mode per master NIC).
   */
  readonly others?: readonly NetworkRecord[];
}

/** The host network's kernel and ebtables access. */
export interface HostContext {
  /** The host netns handle. */
  readonly kernel: KernelNs;
  /** The ebtables driver. */
  readonly ebtables: Ebtables;
}

/**
 * Finds the master: the configured one, or the first link holding an IPv4
 * address inside the subnet.
 *
 * @param kernel The host netns.
 * @param spec The configured master and the subnet.
 * @returns The master link.
 * @throws {CniError} Code 108 naming the subnet and the links examined.
 */
export function findMaster(
  kernel: KernelNs,
  spec: { master: string | undefined; subnet: string; bridge: string },
): LinkState {
  if (spec.master !== undefined) {
    const link = kernel.link(spec.master);
    if (link === undefined) {
      throw new CniError(
        PLUGIN_CODES.masterNotFound,
        `Cannot find master interface "${spec.master}"`,
      );
    }
    return link;
  }
  const examined: string[] = [];
  for (const link of kernel.links()) {
    if (
      link.name === "lo" || link.name === spec.bridge ||
      link.name.startsWith(HOST_VETH_PREFIX)
    ) continue;
    examined.push(link.name);
    const hit = kernel.addrs(link.name).some((a) =>
      a.family === 4 && inSubnet(a.cidr, spec.subnet)
    );
    if (hit) return link;
  }
  throw new CniError(
    PLUGIN_CODES.masterNotFound,
    `Cannot find the master interface: no interface has an address in subnet "${spec.subnet}" (examined: ${
      examined.join(", ") || "none"
    }); set "master" in the config`,
  );
}

/**
 * Refuses a master that a recorded network of another mode uses (a master
 * NIC carries one mode), before anything is changed.
 *
 * @param master The master found for the new network.
 * @param spec The new network's name and mode, the other networks.
 * @throws {CniError} Code 7 naming the network that holds the master.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { refuseSharedMaster } from "./network.ts";
 * const eth0 = { name: "eth0", index: 2, mac: "", mtu: 1500, up: true,
 *   masterIndex: undefined, kind: undefined, peerIndex: undefined };
 * const azure = { name: "azure", mode: "bridge" as const, bridge: "azure0",
 *   master: "eth0", masterMac: "", masterMtu: 1500, subnet: "10.0.0.0/24",
 *   gateway: "10.0.0.1", savedAddrs: [], savedRoutes: [], createdAt: "" };
 * assert.throws(
 *   () => refuseSharedMaster(eth0,
 *     { name: "t", mode: "transparent", others: [azure] }),
 *   { name: "CniError", code: 7, message: /"azure" uses it in bridge mode/ },
 * );
 * ```
 */
export function refuseSharedMaster(
  master: LinkState,
  spec: {
    name: string;
    mode: NetworkMode;
    others: readonly NetworkRecord[] | undefined;
  },
): void {
  const holder = (spec.others ?? []).find((o) =>
    o.name !== spec.name && o.mode !== spec.mode &&
    (o.master === master.name ||
      (o.mode === "bridge" && o.bridge === master.name))
  );
  if (holder === undefined) return;
  throw new CniError(
    CODES.invalidConfig,
    `Cannot create network "${spec.name}" in ${spec.mode} mode on master "${holder.master}": network "${holder.name}" uses it in ${holder.mode} mode, and a master NIC carries one mode`,
    {
      details:
        `Give network "${spec.name}" mode "${holder.mode}", or another master; or remove network "${holder.name}" first (deno task state teardown --network ${holder.name})`,
    },
  );
}

function onLink(route: SavedRoute, link: string): RouteState {
  return { ...route, link };
}

function stripLink(r: RouteState): SavedRoute {
  const { link: _link, ...rest } = r;
  return rest;
}

/** The host rules of a bridge-mode network. */
export function hostRules(net: BridgeNetworkRecord): EbtablesRule[] {
  const rules = [masterSnatRule(net.master, net.masterMac)];
  if (net.primaryIp !== undefined) {
    rules.push(arpReplyRule({ ip: net.primaryIp, mac: net.masterMac }));
  }
  rules.push(arpReplyRedirectRule(net.master));
  return rules;
}

/**
 * Creates the host side of a bridge-mode network, rolling every step back on
 * failure so
 * the node keeps its addresses and routes. Call it with the network-state
 * lock held; `spec.commit` runs last (record and save the state) and a failure in
 * it rolls back too.
 *
 * Steps: bridge (master MAC and MTU pinned), host ebtables rules, addresses
 * and routes off the master, master enslaved (without hairpin), bridge up,
 * addresses and routes (table, protocol, metric kept) onto the bridge.
 *
 * @param ctx The host kernel and ebtables.
 * @param spec Name, bridge, master, subnet, gateway, commit.
 * @returns The network record.
 * @throws {CniError} 108 (no master), 7 (the master carries another mode),
 * 103 (netlink), 104 (ebtables).
 */
export async function createNetwork(
  ctx: HostContext,
  spec: CreateNetworkSpec,
): Promise<BridgeNetworkRecord> {
  const { kernel, ebtables } = ctx;
  const master = findMaster(kernel, spec);
  refuseSharedMaster(master, {
    name: spec.name,
    mode: "bridge",
    others: spec.others,
  });
  const { addrs, routes: savedRoutes } = linkLayout(kernel, master.name);
  const primary = addrs.find((a) => a.family === 4);
  const net: BridgeNetworkRecord = {
    name: spec.name,
    mode: "bridge",
    bridge: spec.bridge,
    master: master.name,
    masterMac: master.mac,
    masterMtu: master.mtu,
    subnet: spec.subnet,
    gateway: spec.gateway,
    ...(primary === undefined ? {} : { primaryIp: stripPrefix(primary.cidr) }),
    savedAddrs: addrs.map((a) => a.cidr),
    savedRoutes,
    createdAt: new Date().toISOString(),
  };
  log.info(
    "Creating network {name}: bridge {bridge}, master {master}, subnet {subnet}, moving {addrs} and {routes} routes",
    {
      name: net.name,
      bridge: net.bridge,
      master: net.master,
      subnet: net.subnet,
      addrs: net.savedAddrs,
      routes: savedRoutes.length,
    },
  );
  await using stack = new AsyncDisposableStack();
  function undo(what: string, run: () => Promise<unknown> | unknown): void {
    deferUndo(stack, { what: `${what} (network "${spec.name}")`, run });
  }
  try {
    if (kernel.link(spec.bridge) === undefined) {
      kernel.addBridge({ name: spec.bridge, mtu: master.mtu, mac: master.mac });
      undo(`delete bridge "${spec.bridge}"`, () => kernel.delLink(spec.bridge));
    }
    const added = await ebtables.ensureAll(hostRules(net));
    if (added.length > 0) {
      undo("remove host ebtables rules", () => ebtables.removeAll(added));
    }
    // Restore routes last on rollback (LIFO): after the addresses are back.
    undo(
      `restore routes on "${master.name}"`,
      () => restoreRoutes(kernel, master.name, savedRoutes),
    );
    for (const a of addrs) {
      kernel.addrDel(master.name, a.cidr);
      undo(
        `add "${a.cidr}" back to "${master.name}"`,
        () => kernel.addrAdd(master.name, a.cidr),
      );
    }
    kernel.setMaster(master.name, spec.bridge);
    undo(
      `release "${master.name}" from "${spec.bridge}"`,
      () => kernel.setMaster(master.name, undefined),
    );
    // No hairpin on the master: it would send the fabric's broadcasts (its
    // ARP requests among them) back to the fabric. The pods' host veths
    // have it (endpoint.ts).
    kernel.setUp(spec.bridge);
    kernel.setUp(master.name);
    for (const a of addrs) {
      kernel.addrAdd(spec.bridge, a.cidr);
      undo(
        `delete "${a.cidr}" from "${spec.bridge}"`,
        () => kernel.addrDel(spec.bridge, a.cidr),
      );
    }
    for (const r of orderRoutes(savedRoutes)) {
      const onBridge = onLink(r, spec.bridge);
      kernel.routeReplace(onBridge);
      undo(
        `delete route "${r.dst}" from "${spec.bridge}"`,
        () => kernel.routeDel(onBridge),
      );
    }
    await spec.commit(net);
  } catch (err) {
    log.error("Creating network {name} failed, rolling back: {err}", {
      name: spec.name,
      err: String(err),
    });
    throw wrapKernel(`Cannot create network "${spec.name}"`, err);
  }
  stack.move();
  return net;
}

/** Link-scope (gateway-less) routes first, so gateways are reachable. */
function orderRoutes(routes: SavedRoute[]): SavedRoute[] {
  return [...routes].sort((a, b) =>
    (a.gw === undefined ? 0 : 1) - (b.gw === undefined ? 0 : 1)
  );
}

function restoreRoutes(
  kernel: KernelNs,
  link: string,
  routes: SavedRoute[],
): void {
  const errors: unknown[] = [];
  for (const r of orderRoutes(routes)) {
    try {
      kernel.routeReplace(onLink(r, link));
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) {
    throw new AggregateError(errors, `Cannot restore routes on "${link}"`);
  }
}

/**
 * Removes a network's host side: rules, master released, bridge deleted,
 * addresses and routes back on the master. Continues past failures and
 * reports them together.
 *
 * @param ctx The host kernel and ebtables.
 * @param net The network record.
 * @throws {AggregateError} With every step that failed.
 */
export async function teardownNetwork(
  ctx: HostContext,
  net: BridgeNetworkRecord,
): Promise<void> {
  const { kernel, ebtables } = ctx;
  const errors: unknown[] = [];
  function step(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      errors.push(err);
    }
  }
  for (const rule of hostRules(net)) {
    try {
      await ebtables.remove(rule);
    } catch (err) {
      errors.push(err);
    }
  }
  for (const r of net.savedRoutes) {
    step(() => kernel.routeDel(onLink(r, net.bridge)));
  }
  for (const cidr of net.savedAddrs) {
    step(() => kernel.addrDel(net.bridge, cidr));
  }
  if (kernel.link(net.master) !== undefined) {
    step(() => kernel.setMaster(net.master, undefined));
  }
  step(() => kernel.delLinkSync(net.bridge));
  if (kernel.link(net.master) !== undefined) {
    step(() => kernel.setUp(net.master));
    for (const cidr of net.savedAddrs) {
      step(() => kernel.addrAdd(net.master, cidr));
    }
    step(() => restoreRoutes(kernel, net.master, net.savedRoutes));
  }
  if (errors.length > 0) {
    throw new AggregateError(
      errors,
      `Cannot fully remove network "${net.name}"`,
    );
  }
}

/** What {@link networkFromKernel} looks for. */
export interface NetworkFromKernelSpec {
  /** The network name to record. */
  readonly name: string;
  /** The bridge, or undefined to find one holding a master or our veths. */
  readonly bridge?: string | undefined;
  /** The IPAM's pools, to name the subnet and its gateway. */
  readonly pools?: readonly { subnet: string; gateway: string }[];
}

/** The bridge a network runs on and its master, found among `links`. */
function findBridge(
  links: readonly LinkState[],
  wanted: string | undefined,
): { bridge: LinkState; master: LinkState | undefined } | undefined {
  const bridges = links.filter((l) =>
    l.kind === "bridge" && (wanted === undefined || l.name === wanted)
  );
  for (const b of bridges) {
    const slaves = links.filter((l) => l.masterIndex === b.index);
    const master = slaves.find((l) =>
      !l.name.startsWith(HOST_VETH_PREFIX) && l.mac === b.mac
    ) ?? slaves.find((l) =>
      !l.name.startsWith(HOST_VETH_PREFIX)
    );
    const veths = slaves.filter((l) => l.name.startsWith(HOST_VETH_PREFIX));
    if (
      wanted !== undefined || (master !== undefined && master.mac === b.mac) ||
      veths.length > 0
    ) {
      return { bridge: b, master };
    }
  }
  return undefined;
}

/** The network CIDR of an IPv4 address with prefix, or undefined. */
function ipv4NetworkOf(cidr: string): string | undefined {
  try {
    return formatIpv4Cidr(parseIpv4Cidr(cidr));
  } catch {
    return undefined;
  }
}

/** Azure's gateway of an IPv4 subnet (its first host), or undefined. */
function firstHostOf(subnet: string): string | undefined {
  try {
    return formatIpv4(ipv4Gateway(parseIpv4Cidr(subnet)));
  } catch {
    return undefined;
  }
}

/**
 * The network that {@link createNetwork} made, read back from the kernel
 * (the inverse, for state repair): the bridge and the master it holds, the
 * addresses and routes the bridge carries (what was moved from the master),
 * the subnet from the IPAM's pools or the primary address, and the gateway
 * from the pool, the default route or the subnet's first host.
 *
 * @param kernel The host namespace.
 * @param spec The name to record, the bridge, the IPAM's pools.
 * @returns The record, or the reason there is none.
 *
 * @example Usage
 * ```ts ignore
 * using host = netlinkKernel().host();
 * const found = networkFromKernel(host, { name: "azure" });
 * if (found.network === undefined) console.log(found.problem);
 * ```
 */
export function networkFromKernel(
  kernel: KernelNs,
  spec: NetworkFromKernelSpec,
): { network: BridgeNetworkRecord; problem?: undefined } | {
  network?: undefined;
  problem: string;
} {
  const found = findBridge(kernel.links(), spec.bridge);
  if (found === undefined) {
    return {
      problem:
        "no bridge holding a master or azv* veths: no network recorded (none set up, or torn down)",
    };
  }
  const { bridge, master } = found;
  if (master === undefined) {
    return {
      problem:
        `bridge ${bridge.name} holds no master: network not recorded; run teardown by hand`,
    };
  }
  const { addrs, routes } = linkLayout(kernel, bridge.name);
  const primaryIp = addrs.find((a) => a.family === 4)?.cidr;
  const pools = spec.pools ?? [];
  const ip = primaryIp === undefined ? undefined : stripPrefix(primaryIp);
  const pool = pools.find((p) => ip !== undefined && inSubnet(ip, p.subnet)) ??
    (pools.length === 1 ? pools[0] : undefined);
  const subnet = pool?.subnet ??
    (primaryIp === undefined ? undefined : ipv4NetworkOf(primaryIp));
  if (subnet === undefined) {
    return {
      problem:
        `bridge ${bridge.name} has no IPv4 address and the IPAM file names no subnet: network not recorded`,
    };
  }
  const defGw = routes.find((r) => r.dst === "0.0.0.0/0")?.gw;
  const gateway = pool?.gateway ??
    (defGw !== undefined && inSubnet(defGw, subnet)
      ? defGw
      : firstHostOf(subnet) ?? "");
  return {
    network: {
      name: spec.name,
      mode: "bridge",
      bridge: bridge.name,
      master: master.name,
      masterMac: master.mac,
      masterMtu: master.mtu,
      subnet,
      gateway,
      ...(ip === undefined ? {} : { primaryIp: ip }),
      savedAddrs: addrs.map((a) => a.cidr),
      savedRoutes: routes,
      createdAt: new Date().toISOString(),
    },
  };
}
