/**
 * The fabric's Azure rules, generated from the emulator's ARM view: which NIC
 * (fabric port) owns which MAC and which IP configurations.
 *
 * Pure: it renders an `ebtables-restore` document (replaced atomically in the
 * fabric netns) and the fabric stack's permanent neighbours.
 *
 * @module
 */
import { kernelMac, normalizeIp, parseMac } from "@vnet/address";

/** Azure's virtual gateway MAC: every subnet ARP is answered with it. */
export const AZURE_GATEWAY_MAC = "12:34:56:78:9a:bc";

/**
 * Azure's IPv6 router: the link-local address the fabric answers on (with
 * {@linkcode AZURE_GATEWAY_MAC}) and the nodes' IPv6 default route uses.
 */
export const AZURE_GATEWAY_IPV6 = "fe80::1234:5678:9abc";

/** One node NIC as the fabric sees it. */
export interface FabricPort {
  /** The fabric-side veth (bridge port) name. */
  readonly port: string;
  /** The NIC's MAC, Linux form (`00:0d:3a:..`). */
  readonly mac: string;
  /** Every IPv4 address of the NIC's ipconfigs, primary first. */
  readonly ips: readonly string[];
  /** Every IPv6 address of the NIC's ipconfigs (dual-stack), node's first. */
  readonly ipv6s?: readonly string[];
}

/** What the rules are generated from. */
export interface FabricView {
  /** The VNET subnet CIDR, e.g. `10.240.0.0/16`. */
  readonly subnet: string;
  /** The ports, one per node NIC. */
  readonly ports: readonly FabricPort[];
}

/**
 * The per-port chain name (ebtables user chain, ≤ 31 characters).
 *
 * @param port The bridge port name.
 * @returns `<port>-src`.
 */
export function portChain(port: string): string {
  return `${port}-src`;
}

/**
 * The EUI-64 link-local address a NIC's kernel gives itself from its MAC
 * (the source of its neighbour discovery).
 *
 * @param mac The MAC (any form).
 * @returns `fe80::…` in canonical text.
 * @throws {SyntaxError} When the MAC does not parse.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { linkLocalOf } from "./fabric_rules.ts";
 * assert.equal(linkLocalOf("00:0d:3a:00:00:01"), "fe80::20d:3aff:fe00:1");
 * ```
 */
export function linkLocalOf(mac: string): string {
  const b = parseMac(mac);
  const hex = (x: number | undefined) => (x ?? 0).toString(16).padStart(2, "0");
  const eui = [(b[0] ?? 0) ^ 2, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]];
  const groups = [0, 2, 4, 6].map((i) => hex(eui[i]) + hex(eui[i + 1]));
  return normalizeIp(`fe80::${groups.join(":")}`);
}

/**
 * Renders the fabric's `nat` and `filter` tables for `ebtables-restore`.
 *
 * - nat PREROUTING: frames from a port whose source MAC is not its NIC's MAC
 *   are dropped before anything answers them; every ARP request for a subnet
 *   address is answered with {@linkcode AZURE_GATEWAY_MAC}; IPv6 neighbour
 *   solicitations go to the fabric's stack, which answers them (its proxy
 *   entries: each IPv6 ipconfig, and its own addresses) with that MAC too;
 *   each IPv4 and IPv6 frame is delivered by destination IP (destination MAC
 *   rewritten to the owning NIC's MAC); every other broadcast or multicast
 *   frame is dropped.
 * - filter INPUT and FORWARD: a chain per port lets through only the NIC's
 *   MAC with one of its ipconfigs as IPv4/ARP/IPv6 source (or, with IPv6,
 *   the NIC's own link-local address), and drops the rest: spoofed sources
 *   and duplicate address detection (source `::`), which nothing answers.
 *
 * @param view The ports and their ipconfigs.
 * @returns The restore document.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { fabricRules } from "./fabric_rules.ts";
 * const doc = fabricRules({
 *   subnet: "10.240.0.0/16",
 *   ports: [{ port: "p0", mac: "00:0d:3a:00:00:01", ips: ["10.240.0.4"] }],
 * });
 * assert.match(doc, /--ip-dst 10\.240\.0\.4 -j dnat --to-dst 00:0d:3a:00:00:01/);
 * ```
 */
export function fabricRules(view: FabricView): string {
  const nat = [
    "*nat",
    ":PREROUTING ACCEPT",
    ":OUTPUT ACCEPT",
    ":POSTROUTING ACCEPT",
  ];
  const filter = [
    "*filter",
    ":INPUT ACCEPT",
    ":FORWARD ACCEPT",
    ":OUTPUT ACCEPT",
  ];
  for (const p of view.ports) {
    filter.push(`:${portChain(p.port)} RETURN`);
  }
  for (const p of view.ports) {
    nat.push(`-A PREROUTING -i ${p.port} -s ! ${kernelMac(p.mac)} -j DROP`);
  }
  nat.push(
    `-A PREROUTING -p ARP --arp-op Request --arp-ip-dst ${view.subnet} -j arpreply --arpreply-mac ${AZURE_GATEWAY_MAC} --arpreply-target DROP`,
  );
  const ipv6 = view.ports.some((p) => (p.ipv6s ?? []).length > 0);
  if (ipv6) {
    // Before the delivery rules: a unicast probe for a pod address is for
    // the fabric to answer, not for the NIC that owns the address.
    nat.push(
      "-A PREROUTING -p IPv6 --ip6-proto ipv6-icmp --ip6-icmp-type neighbour-solicitation -j ACCEPT",
    );
  }
  for (const p of view.ports) {
    const to = `-j dnat --to-dst ${kernelMac(p.mac)} --dnat-target ACCEPT`;
    for (const ip of p.ips) {
      nat.push(`-A PREROUTING -p IPv4 --ip-dst ${ip} ${to}`);
    }
    for (const ip of p.ipv6s ?? []) {
      nat.push(`-A PREROUTING -p IPv6 --ip6-dst ${ip} ${to}`);
    }
  }
  // Azure VNETs carry no broadcast or multicast: what arpreply did not
  // answer (ARP for other addresses, IPv4/IPv6 multicast) ends here.
  nat.push("-A PREROUTING -d Multicast -j DROP");
  for (const p of view.ports) {
    const chain = portChain(p.port);
    filter.push(`-A INPUT -i ${p.port} -j ${chain}`);
    filter.push(`-A FORWARD -i ${p.port} -j ${chain}`);
    filter.push(`-A ${chain} -s ! ${kernelMac(p.mac)} -j DROP`);
    for (const ip of p.ips) {
      filter.push(`-A ${chain} -p IPv4 --ip-src ${ip} -j RETURN`);
      filter.push(`-A ${chain} -p ARP --arp-ip-src ${ip} -j RETURN`);
    }
    const v6 = p.ipv6s ?? [];
    for (const ip of v6.length > 0 ? [...v6, linkLocalOf(p.mac)] : []) {
      filter.push(`-A ${chain} -p IPv6 --ip6-src ${ip} -j RETURN`);
    }
    filter.push(`-A ${chain} -j DROP`);
  }
  return [...nat, ...filter, ""].join("\n");
}

/** A permanent neighbour of the fabric stack (the Azure host knows MACs). */
export interface FabricNeighbour {
  /** The ipconfig address. */
  readonly ip: string;
  /** The owning NIC's MAC. */
  readonly mac: string;
}

/**
 * Lists the fabric stack's neighbours: every ipconfig (IPv4, then IPv6) →
 * its NIC's MAC, so the gateway never needs to ARP or solicit into a node.
 *
 * @param view The ports and their ipconfigs.
 * @returns One entry per ipconfig.
 */
export function fabricNeighbours(view: FabricView): FabricNeighbour[] {
  return view.ports.flatMap((p) =>
    [...p.ips, ...p.ipv6s ?? []].map((ip) => ({ ip, mac: kernelMac(p.mac) }))
  );
}

/**
 * Lists the addresses the fabric's stack answers neighbour solicitations
 * for on the NICs' behalf (proxy NDP, with the gateway MAC, as it answers
 * ARP): every IPv6 ipconfig.
 *
 * @param view The ports and their ipconfigs.
 * @returns The IPv6 addresses.
 */
export function fabricProxies(view: FabricView): string[] {
  return view.ports.flatMap((p) => [...p.ipv6s ?? []]);
}
