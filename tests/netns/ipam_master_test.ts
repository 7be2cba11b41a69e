/**
 * The IPAM's `master` on a real kernel: two NICs (veths) in a test netns,
 * eth0 enslaved to a bridge `azure0` that carries its MAC and address (the
 * bridge-mode layout), and two networks, master eth0 and master eth1,
 * sharing one state file. The engine reads the namespace's links with the
 * product's reader (`readHostLinks()`, `Deno.networkInterfaces()`); the
 * wireserver is an injected `fetch`.
 */
import assert from "node:assert/strict";
import { withNetns } from "@vnet/netlink";
import { IpamEngine, parseIpamConfig, readIpamState } from "@vnet/ipam";
import { nmagentXml, xmlResponse } from "../../ipam/_testing.ts";
import { readHostLinks } from "../../ipam/source.ts";
import { ip, ipJson, TestNetns } from "../_support/netns.ts";

const ETH0_MAC = "02:00:0a:f0:00:04";
const ETH1_MAC = "02:00:0a:f1:00:04";

/** Waits until `link` holds an IPv6 link-local address (past DAD). */
async function linkLocal(ns: TestNetns, link: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const addrs = await ipJson<{ addr_info: { tentative?: boolean }[] }[]>(
      ["-6", "addr", "show", "dev", link, "scope", "link"],
      ns.name,
    );
    if (addrs[0]?.addr_info.some((a) => a.tentative !== true)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${link} got no IPv6 link-local address (IPv6 disabled?)`);
}

/** eth0 under the bridge azure0 (its MAC and address), eth1 on its own. */
async function twoNicNode(ns: TestNetns): Promise<void> {
  const nics: [string, string, string][] = [
    ["eth0", "x0", ETH0_MAC],
    ["eth1", "x1", ETH1_MAC],
  ];
  for (const [nic, peer, mac] of nics) {
    const veth = ["type", "veth", "peer", "name", peer];
    await ip(["link", "add", nic, "address", mac, ...veth], ns.name);
    await ip(["link", "set", peer, "up"], ns.name);
  }
  await ip(
    ["link", "add", "azure0", "address", ETH0_MAC, "type", "bridge"],
    ns.name,
  );
  await ip(["link", "set", "eth0", "master", "azure0"], ns.name);
  for (const link of ["azure0", "eth0", "eth1"]) {
    await ip(["link", "set", link, "up"], ns.name);
  }
  await ip(["addr", "add", "10.240.0.4/24", "dev", "azure0"], ns.name);
  await ip(["addr", "add", "10.241.0.4/24", "dev", "eth1"], ns.name);
  // An enslaved eth0 holds only its link-local address: the IPAM sees
  // links through their addresses.
  await linkLocal(ns, "eth0");
}

/** The wireserver's view: eth0's NIC primary, eth1's secondary. */
function wireserver(): Response {
  return xmlResponse(nmagentXml([
    {
      mac: ETH0_MAC.replaceAll(":", "").toUpperCase(),
      subnets: [{
        prefix: "10.240.0.0/24",
        primary: "10.240.0.4",
        addresses: ["10.240.0.5", "10.240.0.6"],
      }],
    },
    {
      mac: ETH1_MAC.replaceAll(":", "").toUpperCase(),
      primary: false,
      subnets: [{
        prefix: "10.241.0.0/24",
        primary: "10.241.0.4",
        addresses: ["10.241.0.5", "10.241.0.6"],
      }],
    },
  ]));
}

Deno.test("IpamEngine with master takes each network's addresses from its own NIC (two NICs, bridge layout, one state file)", async (t) => {
  await using ns = await TestNetns.create();
  await twoNicNode(ns);
  const dir = await Deno.makeTempDir({ prefix: "cnitest-ipam-master-" });
  try {
    const engine = new IpamEngine({
      stateDir: dir,
      fetch: () => Promise.resolve(wireserver()),
      hostMacs: () => withNetns(ns.path, readHostLinks),
    });
    // Network "eth0" on master eth0, "eth1" on master eth1.
    const add = (id: string, master: string) =>
      engine.reserve({ containerId: id, ifName: "eth0" }, {
        config: parseIpamConfig({
          cniVersion: "1.1.0",
          name: master,
          type: "azure-vnet",
          master,
          ipam: { type: "azure-vnet-ipam", queryInterval: "3600" },
        }),
        network: master,
      });
    await t.step("each master gets its NIC's subnet, in turn", async () => {
      const got = [];
      const adds: [string, string][] = [
        ["a", "eth0"],
        ["b", "eth1"],
        ["c", "eth0"],
        ["d", "eth1"],
      ];
      for (const [id, master] of adds) got.push((await add(id, master)).ip);
      assert.deepEqual(got, [
        "10.240.0.5",
        "10.241.0.5",
        "10.240.0.6",
        "10.241.0.6",
      ]);
    });
    await t.step(
      "master eth1 exhausted: 100, eth0's pool not used",
      async () => {
        await assert.rejects(add("e", "eth1"), {
          name: "CniError",
          code: 100,
          message: /pools of other NICs not used because of master "eth1"/,
        });
      },
    );
    await t.step(
      "the state file keeps both NICs' pools, eth0's named eth0 (not azure0)",
      async () => {
        const state = await readIpamState(`${dir}/azure-vnet-ipam.json`);
        assert.deepEqual(
          Object.values(state?.pools ?? {}).map((
            p,
          ) => [p.subnet, p.macAddress, p.ifName]),
          [
            ["10.240.0.0/24", "02000af00004", "eth0"],
            ["10.241.0.0/24", "02000af10004", "eth1"],
          ],
        );
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
