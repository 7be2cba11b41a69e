/**
 * The sandbox fabric: a netns standing for the Azure host and SDN, with one
 * bridge, the gateway and metadata addresses, and a veth per node whose node
 * end is that node's `eth0`.
 *
 * Drives `ip`, `bridge` and `ebtables-restore` through argument arrays: this
 * emulates the outside world, it is not product code.
 *
 * @module
 */
import {
  formatIpv4,
  host,
  type Ipv4Cidr,
  kernelMac,
  parseCidr,
  parseIpv4Cidr,
} from "@vnet/address";
import { execIn, ipIn, run } from "./_run.ts";
import { untilNoTentative } from "../testbed/mod.ts";
import {
  AZURE_GATEWAY_IPV6,
  AZURE_GATEWAY_MAC,
  fabricNeighbours,
  fabricProxies,
  fabricRules,
  type FabricView,
} from "./fabric_rules.ts";

/** The documented metadata addresses, served inside the fabric netns. */
export const WIRESERVER_IP = "168.63.129.16";
/** IMDS. */
export const IMDS_IP = "169.254.169.254";

/** Names of everything under one sandbox prefix. */
export class SandboxNames {
  /** The prefix, e.g. `vsb` or `vsb-k3j9a`. */
  readonly prefix: string;

  /**
   * @param prefix The sandbox prefix.
   * @throws {RangeError} When the prefix would make interface names too long.
   */
  constructor(prefix: string) {
    if (!/^[a-z][a-z0-9-]{0,10}$/.test(prefix)) {
      throw new RangeError(
        `Cannot use sandbox prefix "${prefix}": want [a-z][a-z0-9-]{0,10}`,
      );
    }
    this.prefix = prefix;
  }

  /** The fabric netns. */
  get fabric(): string {
    return `${this.prefix}-fabric`;
  }

  /** The fabric bridge (inside the fabric netns). */
  get bridge(): string {
    return `${this.prefix}-br`;
  }

  /**
   * The node netns.
   *
   * @param i Node index.
   * @returns `<prefix>-node<i>`.
   */
  node(i: number): string {
    return `${this.prefix}-node${i}`;
  }

  /**
   * The fabric-side bridge port of a node.
   *
   * @param i Node index.
   * @returns `<prefix>-p<i>`.
   */
  port(i: number): string {
    return `${this.prefix}-p${i}`;
  }

  /**
   * A pod netns.
   *
   * @param node Node index.
   * @param pod Pod index on that node.
   * @returns `<prefix>-n<node>-pod<pod>`.
   */
  pod(node: number, pod: number): string {
    return `${this.prefix}-n${node}-pod${pod}`;
  }
}

/** The subnet layout of the emulated VNET. */
export interface SubnetLayout {
  /** The subnet CIDR, e.g. `10.240.0.0/16`. */
  readonly cidr: string;
  /** Prefix length. */
  readonly prefixLength: number;
  /** The gateway (host number 1). */
  readonly gateway: string;
  /**
   * The IPv6 subnet (dual-stack): its CIDR, prefix length and host 1,
   * which the fabric holds beside {@linkcode AZURE_GATEWAY_IPV6}.
   */
  readonly ipv6?: {
    readonly cidr: string;
    readonly prefixLength: number;
    readonly gateway: string;
  };
}

/**
 * Derives the gateway of a subnet (host number 1).
 *
 * @param cidr The subnet, e.g. `10.240.0.0/16`.
 * @returns Its layout.
 * @throws {SyntaxError} When the CIDR does not parse.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { subnetLayout } from "./fabric.ts";
 * assert.equal(subnetLayout("10.240.0.0/16").gateway, "10.240.0.1");
 * ```
 */
export function subnetLayout(
  cidr: string,
  options: { ipv6?: string | undefined } = {},
): SubnetLayout {
  let parsed: Ipv4Cidr;
  try {
    parsed = parseIpv4Cidr(cidr);
  } catch (cause) {
    throw new SyntaxError(`Cannot parse CIDR "${cidr}"`, { cause });
  }
  if (parsed.prefixLength > 30) {
    throw new SyntaxError(`Cannot parse CIDR "${cidr}"`);
  }
  const gateway = formatIpv4(parsed.network + 1);
  const layout = { cidr, prefixLength: parsed.prefixLength, gateway };
  const v6 = options.ipv6;
  if (v6 === undefined) return layout;
  const p6 = parseCidr(v6);
  if (p6.family !== 6 || p6.prefix !== 64) {
    throw new SyntaxError(`Cannot use IPv6 subnet "${v6}": want an IPv6 /64`);
  }
  return {
    ...layout,
    ipv6: { cidr: v6, prefixLength: 64, gateway: host(v6, 1) },
  };
}

/**
 * Creates the fabric netns: loopback up with the metadata addresses, the
 * bridge with Azure's gateway MAC holding the gateway address.
 *
 * @param names The sandbox names.
 * @param subnet The subnet layout.
 * @throws {Error} When a command fails (e.g. the netns already exists).
 */
export async function createFabric(
  names: SandboxNames,
  subnet: SubnetLayout,
): Promise<void> {
  const ns = names.fabric;
  await ipIn("", ["netns", "add", ns]);
  await ipIn(ns, ["link", "set", "lo", "up"]);
  await ipIn(ns, ["addr", "add", `${WIRESERVER_IP}/32`, "dev", "lo"]);
  await ipIn(ns, ["addr", "add", `${IMDS_IP}/32`, "dev", "lo"]);
  await ipIn(ns, [
    "link",
    "add",
    names.bridge,
    "address",
    AZURE_GATEWAY_MAC,
    "type",
    "bridge",
  ]);
  await ipIn(ns, [
    "addr",
    "add",
    `${subnet.gateway}/${subnet.prefixLength}`,
    "dev",
    names.bridge,
  ]);
  await ipIn(ns, ["link", "set", names.bridge, "up"]);
  const v6 = subnet.ipv6;
  if (v6 === undefined) return;
  // The fabric's stack answers neighbour solicitations for the NICs'
  // IPv6 ipconfigs (proxy entries, applyFabricRules()) as ebtables answers
  // ARP; Linux proxies only on a forwarding interface, and answers a
  // multicast solicitation at once only with proxy_delay 0.
  for (
    const kv of [
      "net.ipv6.conf.all.forwarding=1",
      "net.ipv6.conf.all.proxy_ndp=1",
      `net.ipv6.neigh.${names.bridge}.proxy_delay=0`,
    ]
  ) {
    await execIn(ns, ["sysctl", "-q", "-w", kv]);
  }
  for (const a of [`${AZURE_GATEWAY_IPV6}/64`, `${v6.gateway}/64`]) {
    await ipIn(ns, ["-6", "addr", "add", a, "dev", names.bridge, "nodad"]);
  }
}

/** A node's NIC as the kernel gets it. */
export interface NodeNic {
  /** The NIC MAC (any Azure form). */
  readonly mac: string;
  /** The primary IPv4 address. */
  readonly primaryIp: string;
  /** The node's IPv6 address (dual-stack). */
  readonly primaryIpv6?: string | undefined;
}

/**
 * Creates a node netns wired to the fabric, like a VM after DHCP: `eth0` with
 * the NIC's MAC, the primary address and a default route via the gateway.
 *
 * The fabric end is a bridge port with hairpin on (Azure returns traffic
 * between two ipconfigs of one NIC), learning off (the fabric knows MACs)
 * and no flooding of unknown unicast, multicast or broadcast: Azure never
 * floods, and with hairpin on a flooded frame would come back to a node
 * whose bridge (hairpin on its master too, as earlier versions of the
 * plugin set it) sends it out again, forever.
 *
 * @param names The sandbox names.
 * @param index The node index.
 * @param options The NIC and the subnet.
 * @throws {Error} When a command fails.
 */
export async function createNode(
  names: SandboxNames,
  index: number,
  options: { nic: NodeNic; subnet: SubnetLayout },
): Promise<void> {
  const node = names.node(index);
  const port = names.port(index);
  const fab = names.fabric;
  await ipIn("", ["netns", "add", node]);
  await ipIn(node, ["link", "set", "lo", "up"]);
  await ipIn(fab, [
    "link",
    "add",
    port,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    node,
    "address",
    kernelMac(options.nic.mac),
  ]);
  await ipIn(fab, ["link", "set", port, "master", names.bridge]);
  await ipIn(fab, [
    "link",
    "set",
    port,
    "type",
    "bridge_slave",
    "hairpin",
    "on",
    "learning",
    "off",
    "flood",
    "off",
    "mcast_flood",
    "off",
    "bcast_flood",
    "off",
  ]);
  await ipIn(fab, ["link", "set", port, "up"]);
  await ipIn(node, [
    "addr",
    "add",
    `${options.nic.primaryIp}/${options.subnet.prefixLength}`,
    "dev",
    "eth0",
  ]);
  await ipIn(node, ["link", "set", "eth0", "up"]);
  await ipIn(node, [
    "route",
    "add",
    "default",
    "via",
    options.subnet.gateway,
    "dev",
    "eth0",
    "proto",
    "dhcp",
  ]);
  const v6 = options.subnet.ipv6;
  const ip6 = options.nic.primaryIpv6;
  if (v6 === undefined || ip6 === undefined) return;
  // As DHCPv6 and the router advertisement set it up on a dual-stack VM:
  // the address with its /64, the default route via Azure's router.
  await ipIn(node, ["-6", "addr", "add", `${ip6}/64`, "dev", "eth0"]);
  await ipIn(node, [
    "-6",
    "route",
    "add",
    "default",
    "via",
    AZURE_GATEWAY_IPV6,
    "dev",
    "eth0",
    "proto",
    "ra",
  ]);
  await untilNoTentative(node);
}

/**
 * Replaces the fabric's rules from a view of the ARM state: the ebtables
 * tables (atomically, through `ebtables-restore`), the static FDB entry of
 * each NIC MAC on its port, and the fabric stack's permanent neighbours.
 *
 * @param names The sandbox names.
 * @param view The ports and their ipconfigs.
 * @throws {Error} When a command fails.
 */
export async function applyFabricRules(
  names: SandboxNames,
  view: FabricView,
): Promise<void> {
  const fab = names.fabric;
  await execIn(fab, ["ebtables-restore"], { stdin: fabricRules(view) });
  const batch: string[] = [
    `neigh flush dev ${names.bridge} nud permanent`,
    ...fabricNeighbours(view).map((n) =>
      `neigh replace ${n.ip} lladdr ${n.mac} dev ${names.bridge} nud permanent`
    ),
    `neigh flush proxy dev ${names.bridge}`,
    ...fabricProxies(view).map((ip) =>
      `neigh replace proxy ${ip} dev ${names.bridge}`
    ),
  ];
  await run("ip", ["-n", fab, "-batch", "-"], {
    stdin: batch.join("\n") + "\n",
  });
  for (const p of view.ports) {
    await run("bridge", [
      "-n",
      fab,
      "fdb",
      "replace",
      kernelMac(p.mac),
      "dev",
      p.port,
      "master",
      "static",
    ]);
  }
}

/**
 * Lists the netns names that start with `<prefix>-`.
 *
 * @param prefix The sandbox prefix.
 * @returns The names.
 */
export async function listSandboxNetns(prefix: string): Promise<string[]> {
  const out = await ipIn("", ["-j", "netns", "list"]);
  const list = JSON.parse(out.trim() === "" ? "[]" : out) as { name: string }[];
  return list.map((n) => n.name).filter((n) => n.startsWith(`${prefix}-`));
}
