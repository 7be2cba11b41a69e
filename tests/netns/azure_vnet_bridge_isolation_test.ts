/**
 * azure-vnet in bridge mode against real namespaces: what a pod sends,
 * and what the fabric sends, stays where it belongs. A pod cannot speak
 * with another pod's address or MAC (the anti-spoofing rules of its host
 * veth, `spoofCheck`), takes no IPv6 configuration from router
 * advertisements, and the master sends no broadcast of the fabric back to
 * it. Frames are crafted and captured with packet sockets inside the
 * namespaces the test made (`tests/_support/frames.ts`).
 */
import { assert } from "../_support/assert.ts";
import { ifaces, sourceNode, staticIpam } from "../_support/azure_node.ts";
import {
  arpFrame,
  ethernet,
  isRouterAdvertisement,
  PacketSocket,
  readArp,
  readIpv4,
  routerAdvertisement,
} from "../_support/frames.ts";
import { eui64LinkLocal } from "@vnet/address";
import {
  type AzureNode,
  ip,
  ipJson,
  links,
  neighbours,
  type Netns,
} from "../../tools/testbed/mod.ts";

const GATEWAY = "10.77.0.1";
const NODE = "10.77.0.4";
const BROADCAST = "ff:ff:ff:ff:ff:ff";
const ZERO_MAC = "00:00:00:00:00:00";

/** A node with `count` pods attached (`.5`, `.6`, ...), default config. */
async function podsOn(
  n: AzureNode,
  count: number,
  extra: Record<string, unknown> = {},
): Promise<{ pod: Netns; ip: string; mac: string; veth: string }[]> {
  const out = [];
  for (let i = 0; i < count; i++) {
    const pod = await n.pod();
    const r = await n.run(
      "ADD",
      n.conf(staticIpam(n), extra),
      n.env(`pod${i + 1}`, pod),
    );
    assert.equal(r.code, 0, JSON.stringify(r.json));
    const [host, end] = ifaces(r.json);
    out.push({
      pod,
      ip: n.addr(5 + i),
      mac: end?.mac ?? "",
      veth: host?.name ?? "",
    });
  }
  return out;
}

async function macOf(ns: string, dev: string): Promise<string> {
  return (await links(ns)).find((l) => l.ifname === dev)?.address ?? "";
}

async function lladdr(ns: Netns, ipAddr: string): Promise<string | undefined> {
  return (await neighbours(ns.name, "eth0")).find((x) => x.dst === ipAddr)
    ?.lladdr;
}

/** The bridge port (`eth0`, a host veth) a MAC is learned on. */
async function fdbPort(n: AzureNode, mac: string): Promise<string[]> {
  const out = await n.node.exec("bridge", [
    "-j",
    "fdb",
    "show",
    "br",
    "azure0",
  ]);
  const rows = JSON.parse(out) as { mac: string; ifname: string }[];
  return rows.filter((r) => r.mac === mac).map((r) => r.ifname);
}

Deno.test("azure-vnet bridge mode: a pod cannot speak with another pod's address or MAC", async (t) => {
  await using n = await sourceNode("10.77.0.0/24");
  const [p1, p2, p3] = await podsOn(n, 3, { spoofCheck: true });
  assert.ok(p1 && p2 && p3);
  const fabricMac = await macOf(n.azure.name, "ah0");
  using fabric = PacketSocket.open(n.azure.path, "ah0");
  using fromP1 = PacketSocket.open(p1.pod.path, "eth0");

  await t.step("the host veths carry the rules", async () => {
    const eb = await n.ebtables();
    for (const p of [p1, p2, p3]) {
      const lines = eb.split("\n").filter((l) => l.includes(`-i ${p.veth} `));
      assert.equal(lines.length, 5, lines.join("\n"));
      assert.ok(lines.includes(`-s ! ${p.mac} -i ${p.veth} -j DROP`));
    }
  });

  await t.step(
    "pods reach each other, the node and the fabric, resolving ARP both ways",
    async () => {
      for (const ns of [p1.pod, p2.pod, p3.pod, n.azure]) {
        await ip(["neigh", "flush", "all"], ns.name);
      }
      assert.ok(await p1.pod.ping(p2.ip), "pod1 -> pod2");
      assert.ok(await p2.pod.ping(p1.ip), "pod2 -> pod1");
      assert.ok(await p3.pod.ping(p2.ip), "pod3 -> pod2");
      assert.ok(await p1.pod.ping(NODE), "pod1 -> node");
      assert.ok(await n.node.ping(p1.ip), "node -> pod1");
      assert.ok(await p1.pod.ping(GATEWAY), "pod1 -> gateway");
      for (const p of [p1, p2, p3]) {
        assert.ok(await n.azure.ping(p.ip), `fabric -> ${p.ip}`);
      }
      assert.equal(await lladdr(p3.pod, p2.ip), p2.mac);
      assert.equal(await lladdr(p1.pod, GATEWAY), fabricMac);
    },
  );

  await t.step(
    "an ARP reply claiming pod2's address changes no cache and never reaches the fabric",
    async () => {
      // Any ARP from pod2's address may now override pod3's entry at once.
      await p3.pod.exec("sysctl", ["-qw", "net.ipv4.neigh.eth0.locktime=0"]);
      await fabric.received(0);
      fromP1.send(arpFrame({
        op: 2,
        sha: p1.mac,
        spa: p2.ip,
        tha: BROADCAST,
        tpa: p2.ip,
      }));
      const seen = (await fabric.received(300)).map(readArp);
      assert.equal(await lladdr(p3.pod, p2.ip), p2.mac);
      assert.ok(!seen.some((a) => a?.spa === p2.ip), JSON.stringify(seen));
      assert.ok(await p3.pod.ping(p2.ip), "pod3 -> pod2");
    },
  );

  await t.step(
    "an ARP request from pod2's address, or with another sender MAC, goes nowhere",
    async () => {
      await fabric.received(0);
      for (
        const frame of [
          { op: 1 as const, sha: p1.mac, spa: p2.ip },
          { op: 1 as const, sha: p2.mac, spa: p1.ip },
        ]
      ) {
        fromP1.send(
          arpFrame({ ...frame, tha: ZERO_MAC, tpa: "10.77.0.99" }, {
            src: p1.mac,
          }),
        );
      }
      const seen = (await fabric.received(300)).map(readArp);
      assert.ok(
        !seen.some((a) => a?.tpa === "10.77.0.99"),
        JSON.stringify(seen),
      );
      assert.equal(await lladdr(p3.pod, p2.ip), p2.mac);
      assert.equal(await lladdr(p3.pod, p1.ip), undefined);
    },
  );

  await t.step("an IPv4 packet from pod2's address goes nowhere", async () => {
    // pod1 sends from pod2's address with its own MAC, to the gateway.
    await ip(["addr", "add", `${p2.ip}/32`, "dev", "eth0"], p1.pod.name);
    await ip(
      ["neigh", "replace", GATEWAY, "lladdr", fabricMac, "dev", "eth0"],
      p1.pod.name,
    );
    await fabric.received(0);
    await p1.pod.exec("ping", ["-c1", "-W1", "-I", p2.ip, GATEWAY]).catch(
      () => "",
    );
    const seen = (await fabric.received(100)).map(readIpv4);
    await ip(["addr", "del", `${p2.ip}/32`, "dev", "eth0"], p1.pod.name);
    assert.ok(!seen.some((x) => x?.src === p2.ip), JSON.stringify(seen));
    assert.ok(await p1.pod.ping(GATEWAY), "pod1's own address still works");
  });

  await t.step(
    "a frame with pod2's MAC does not take pod2's traffic from the fabric",
    async () => {
      assert.ok(await p2.pod.ping(GATEWAY));
      fromP1.send(ethernet(
        { dst: BROADCAST, src: p2.mac, type: 0x88b5 },
        new Uint8Array(46),
      ));
      await fabric.received(50);
      assert.deepEqual(await fdbPort(n, p2.mac), [p2.veth]);
      assert.ok(await n.azure.ping(p2.ip), "fabric -> pod2");
    },
  );

  await t.step("an ARP probe of the pod passes", async () => {
    await fabric.received(0);
    fromP1.send(arpFrame({
      op: 1,
      sha: p1.mac,
      spa: "0.0.0.0",
      tha: ZERO_MAC,
      tpa: "10.77.0.98",
    }));
    const seen = (await fabric.received(300)).map(readArp);
    assert.ok(
      seen.some((a) => a?.tpa === "10.77.0.98" && a.spa === "0.0.0.0"),
      JSON.stringify(seen),
    );
  });

  await t.step("CHECK passes; DEL removes the rules", async () => {
    const c = n.conf(staticIpam(n), { spoofCheck: true });
    const ok = await n.run("CHECK", c, n.env("pod1", p1.pod));
    assert.equal(ok.code, 0, JSON.stringify(ok.json));
    const d = await n.run("DEL", c, n.env("pod1", p1.pod));
    assert.equal(d.code, 0, JSON.stringify(d.json));
    const eb = await n.ebtables();
    assert.doesNotMatch(eb, new RegExp(`-i ${p1.veth} `));
    assert.equal(
      eb.split("\n").filter((l) => l.includes(`-i ${p2.veth} `)).length,
      5,
    );
  });
});

Deno.test("azure-vnet bridge mode: spoofCheck false installs no anti-spoofing rule", async () => {
  await using n = await sourceNode("10.77.0.0/24");
  const extra = { spoofCheck: false };
  const [p1, p2] = await podsOn(n, 2, extra);
  assert.ok(p1 && p2);
  assert.doesNotMatch(await n.ebtables(), / -i azv/);
  assert.ok(await p1.pod.ping(p2.ip));
  assert.ok(await n.azure.ping(p1.ip));
  const c = n.conf(staticIpam(n), extra);
  const ok = await n.run("CHECK", c, n.env("pod1", p1.pod));
  assert.equal(ok.code, 0, JSON.stringify(ok.json));
  const st = await n.state();
  assert.equal(st.endpoints["pod1/eth0"]?.spoofCheck, undefined);
});

Deno.test("azure-vnet bridge mode: pods take no IPv6 configuration from router advertisements", async () => {
  await using n = await sourceNode("10.77.0.0/24");
  const [p1] = await podsOn(n, 1);
  assert.ok(p1);
  const fabricMac = await macOf(n.azure.name, "ah0");
  using fabric = PacketSocket.open(n.azure.path, "ah0");
  using atPod = PacketSocket.open(p1.pod.path, "eth0");
  await atPod.received(0);
  fabric.send(routerAdvertisement(
    { mac: fabricMac, linkLocal: eui64LinkLocal(fabricMac) },
    "2001:db8:77::",
  ));
  const arrived = await atPod.received(500);
  assert.ok(arrived.some(isRouterAdvertisement), "the RA reached the pod");
  const v6 = await ipJson<{ addr_info: { local: string }[] }[]>(
    ["-6", "addr", "show", "dev", "eth0", "scope", "global"],
    p1.pod.name,
  );
  assert.deepEqual(v6.flatMap((a) => a.addr_info.map((i) => i.local)), []);
  const def = await ipJson<unknown[]>(
    ["-6", "route", "show", "default"],
    p1.pod.name,
  );
  assert.deepEqual(def, []);
  assert.equal(
    (await p1.pod.exec("sysctl", ["-n", "net.ipv6.conf.eth0.accept_ra"]))
      .trim(),
    "0",
  );
});

Deno.test("azure-vnet bridge mode: the master sends no broadcast of the fabric back", async (t) => {
  await using n = await sourceNode("10.77.0.0/24");
  const [p1, p2] = await podsOn(n, 2);
  assert.ok(p1 && p2);
  const fabricMac = await macOf(n.azure.name, "ah0");
  using fabric = PacketSocket.open(n.azure.path, "ah0");

  async function reflected(): Promise<unknown[]> {
    await fabric.received(0);
    fabric.send(arpFrame({
      op: 1,
      sha: fabricMac,
      spa: GATEWAY,
      tha: ZERO_MAC,
      tpa: "10.77.0.97",
    }));
    return (await fabric.received(300)).map(readArp).filter((a) =>
      a?.tpa === "10.77.0.97"
    );
  }

  await t.step("hairpin is off on the master, on for the pods", async () => {
    const show = (dev: string) =>
      n.node.exec("bridge", ["-d", "link", "show", "dev", dev]);
    assert.match(await show("eth0"), /hairpin off/);
    for (const p of [p1, p2]) assert.match(await show(p.veth), /hairpin on/);
  });
  await t.step("an ARP request of the fabric does not come back", async () => {
    assert.deepEqual(await reflected(), []);
  });
  await t.step("pods still reach each other and the fabric", async () => {
    assert.ok(await p1.pod.ping(p2.ip), "pod1 -> pod2");
    assert.ok(await p2.pod.ping(p1.ip), "pod2 -> pod1");
    assert.ok(await p1.pod.ping(GATEWAY), "pod1 -> gateway");
    assert.ok(await n.azure.ping(p2.ip), "fabric -> pod2");
  });
  await t.step(
    "a master left with hairpin on (earlier versions, the Go plugin) gets it off at reconcile",
    async () => {
      await n.node.exec("bridge", [
        "link",
        "set",
        "dev",
        "eth0",
        "hairpin",
        "on",
      ]);
      assert.ok((await reflected()).length > 0, "the reflection, as before");
      const gc = await n.stateTool(["gc"]);
      assert.equal(gc.code, 0, gc.stderr);
      assert.deepEqual(await reflected(), []);
    },
  );
});
