/**
 * The fabric's Azure rules, generated from the emulator's ARM view: which NIC
 * (fabric port) owns which MAC and which IP configurations.
 *
 * Pure: it renders an `ebtables-restore` document (replaced atomically in the
 * fabric netns) and the fabric stack's permanent neighbours.
 *
 * @module
 */
import { kernelMac } from "@vnet/address";

/** Azure's virtual gateway MAC: every subnet ARP is answered with it. */
export const AZURE_GATEWAY_MAC = "12:34:56:78:9a:bc";

/** One node NIC as the fabric sees it. */
export interface FabricPort {
  /** The fabric-side veth (bridge port) name. */
  readonly port: string;
  /** The NIC's MAC, Linux form (`00:0d:3a:..`). */
  readonly mac: string;
  /** Every IPv4 address of the NIC's ipconfigs, primary first. */
  readonly ips: readonly string[];
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
 * Renders the fabric's `nat` and `filter` tables for `ebtables-restore`.
 *
 * - nat PREROUTING: frames from a port whose source MAC is not its NIC's MAC
 *   are dropped before anything answers them; every ARP request for a subnet
 *   address is answered with {@linkcode AZURE_GATEWAY_MAC}; each IPv4 frame
 *   is delivered by destination IP (destination MAC rewritten to the owning
 *   NIC's MAC); every other broadcast or multicast frame is dropped.
 * - filter INPUT and FORWARD: a chain per port lets through only the NIC's
 *   MAC with one of its ipconfigs as IPv4/ARP source, and drops the rest.
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
  for (const p of view.ports) {
    for (const ip of p.ips) {
      nat.push(
        `-A PREROUTING -p IPv4 --ip-dst ${ip} -j dnat --to-dst ${
          kernelMac(p.mac)
        } --dnat-target ACCEPT`,
      );
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
 * Lists the fabric stack's neighbours: every ipconfig → its NIC's MAC, so
 * the gateway never needs to ARP into a node.
 *
 * @param view The ports and their ipconfigs.
 * @returns One entry per ipconfig.
 */
export function fabricNeighbours(view: FabricView): FabricNeighbour[] {
  return view.ports.flatMap((p) =>
    p.ips.map((ip) => ({ ip, mac: kernelMac(p.mac) }))
  );
}
