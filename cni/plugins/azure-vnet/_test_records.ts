/**
 * State records for unit tests: the network `azure` on `azure0` over
 * `eth0` (10.0.0.0/24) and endpoints in it.
 *
 * @module
 */
import type { EndpointRecord, NetworkRecord } from "./state.ts";

/** The network `azure`: bridge `azure0`, master `eth0`, 10.0.0.0/24. */
export const TEST_NETWORK: NetworkRecord = {
  name: "azure",
  mode: "bridge",
  bridge: "azure0",
  master: "eth0",
  masterMac: "02:0d:3a:00:00:01",
  masterMtu: 1500,
  subnet: "10.0.0.0/24",
  gateway: "10.0.0.1",
  primaryIp: "10.0.0.4",
  savedAddrs: ["10.0.0.4/24"],
  savedRoutes: [],
  createdAt: "",
};

/**
 * An endpoint of {@link TEST_NETWORK} on `eth0` with one /24 address.
 *
 * @param spec Container id, host veth, address, pod MAC and netns path.
 * @returns The record.
 */
export function testEndpoint(spec: {
  containerId: string;
  hostVeth: string;
  ip: string;
  mac: string;
  netns: string;
}): EndpointRecord {
  return {
    network: "azure",
    containerId: spec.containerId,
    ifName: "eth0",
    netns: spec.netns,
    hostVeth: spec.hostVeth,
    hostMac: "",
    podMac: spec.mac,
    mtu: 1500,
    addresses: [`${spec.ip}/24`],
    ipamRoute: "in-process",
    result: { cniVersion: "1.1.0" },
  };
}
