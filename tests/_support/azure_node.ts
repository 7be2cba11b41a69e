/**
 * The tests' side of the testbed's emulated azure-vnet node
 * ({@link AzureNode}): a node that runs azure-vnet from source, created
 * after the privilege check, and the state-versus-kernel check.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  AZURE_VNET_SRC,
  AzureNode,
  links,
  neighbours,
  routes,
} from "../../tools/testbed/mod.ts";
import { requireRoot } from "./privilege.ts";

/**
 * A node on `subnet` running azure-vnet from source (`deno run`), with
 * `CNI_PATH` as the runtime's only environment; fails first when not root.
 *
 * @param subnet Such as `10.77.0.0/24`.
 * @returns The node.
 */
export async function sourceNode(subnet: string): Promise<AzureNode> {
  requireRoot();
  return await AzureNode.create(subnet, {
    argv: AZURE_VNET_SRC,
    baseEnv: { CNI_PATH: "/usr/lib/cni" },
  });
}

/**
 * A static azure-vnet-ipam config over `.4` to `.7` of the node's subnet
 * (`.4` is the node's own).
 *
 * @param n The node.
 * @returns The `ipam` object.
 */
export function staticIpam(n: AzureNode): Record<string, unknown> {
  return n.staticIpam([4, 5, 6, 7].map((i) => n.addr(i)));
}

/**
 * The `interfaces` of a CNI result.
 *
 * @param out The parsed result.
 * @returns Its interfaces (none when absent).
 */
export function ifaces(out: Record<string, unknown> | undefined): {
  name: string;
  mac: string;
  sandbox?: string;
  mtu?: number;
}[] {
  return (out?.interfaces ?? []) as {
    name: string;
    mac: string;
    sandbox?: string;
    mtu?: number;
  }[];
}

interface StateEndpoint {
  containerId: string;
  ifName: string;
  hostVeth: string;
  addresses: string[];
  spoofCheck?: boolean;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return {};
    throw err;
  }
}

/**
 * Asserts that both state files parse and match the kernel of `n`: host
 * veths, IPAM reservations and, per mode, the bridge's permanent
 * neighbours, the ebtables rules per pod IP and the anti-spoofing rules
 * per host veth (bridge) or the node's routes to its pods and no ebtables
 * rule (transparent) are exactly the state's endpoints.
 *
 * @returns The endpoints' addresses (bare IPs) by `containerId/ifName`.
 */
export async function assertStateMatchesKernel(
  n: AzureNode,
  options: { mode?: "bridge" | "transparent" } = {},
): Promise<Map<string, string>> {
  const state = await readJson(n.statePath);
  const eps = Object.values(
    (state.endpoints ?? {}) as Record<string, StateEndpoint>,
  );
  const byKey = new Map<string, string>();
  for (const e of eps) {
    const a = e.addresses[0]?.split("/")[0];
    assert.ok(a !== undefined, `endpoint without address: ${e.containerId}`);
    byKey.set(`${e.containerId}/${e.ifName}`, a);
  }
  const ips = [...byKey.values()].sort();
  assert.equal(new Set(ips).size, ips.length, `duplicate IP in state ${ips}`);
  const ls = await links(n.node.name);
  const veths = ls.map((l) => l.ifname).filter((x) => x.startsWith("azv"))
    .sort();
  assert.deepEqual(veths, eps.map((e) => e.hostVeth).sort(), "host veths");
  if (options.mode === "transparent") {
    const routed = (await routes(n.node.name)).filter((r) =>
      r.dev.startsWith("azv")
    ).map((r) => r.dst).sort();
    assert.deepEqual(routed, ips, "routes to the pods");
    assert.doesNotMatch(await n.ebtables(), /-j (snat|dnat|arpreply)/);
    assertIpamHolds(await readJson(n.ipamPath), { byKey, ips });
    return byKey;
  }
  const neigh = ls.some((l) => l.ifname === "azure0")
    ? await neighbours(n.node.name, "azure0", { nud: "permanent" })
    : [];
  assert.deepEqual(
    neigh.map((x) => x.dst).filter((d) => d.includes(".")).sort(),
    ips,
    "permanent neighbours",
  );
  const eb = await n.ebtables();
  const ruleIps = [
    ...eb.matchAll(/--(?:ip|arp-ip)-dst (\d+\.\d+\.\d+\.\d+)/g),
  ].map((m) => m[1] ?? "").filter((x) => x !== n.addr(4));
  for (const a of ips) {
    assert.equal(
      ruleIps.filter((x) => x === a).length,
      2,
      `ebtables rules for ${a}`,
    );
  }
  assert.deepEqual(
    [...new Set(ruleIps)].sort(),
    ips,
    "no ebtables rule for an IP outside state",
  );
  // Anti-spoofing rules: five per endpoint that recorded them (one IPv4
  // address), none for any other veth.
  const spoofVeths = [...eb.matchAll(/ -i (azv[0-9a-f]+) /g)].map((m) =>
    m[1] ?? ""
  );
  for (const e of eps) {
    assert.equal(
      spoofVeths.filter((v) => v === e.hostVeth).length,
      e.spoofCheck === true ? 5 : 0,
      `anti-spoofing rules of ${e.hostVeth}`,
    );
  }
  assert.deepEqual(
    [...new Set(spoofVeths)].filter((v) => !eps.some((e) => e.hostVeth === v)),
    [],
    "no anti-spoofing rule for a veth outside state",
  );
  assertIpamHolds(await readJson(n.ipamPath), { byKey, ips });
  return byKey;
}

/** The IPAM file holds exactly `ips`, each for its endpoint. */
function assertIpamHolds(
  ipam: Record<string, unknown>,
  state: { byKey: Map<string, string>; ips: string[] },
): void {
  const { byKey, ips } = state;
  const held: string[] = [];
  const pools = (ipam.pools ?? {}) as Record<
    string,
    { addresses: Record<string, { containerId?: string; ifName?: string }> }
  >;
  for (const p of Object.values(pools)) {
    for (const [a, r] of Object.entries(p.addresses)) {
      if (r.containerId !== undefined) {
        held.push(a);
        assert.equal(
          byKey.get(`${r.containerId}/${r.ifName ?? "eth0"}`),
          a,
          `IPAM holds ${a} for ${r.containerId}`,
        );
      }
    }
  }
  assert.deepEqual(held.sort(), ips, "IPAM reservations");
}
