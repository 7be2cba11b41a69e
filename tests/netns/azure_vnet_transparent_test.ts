/**
 * azure-vnet in transparent mode against real namespaces: the testbed's node
 * (eth0 a veth to an "azure host" netns, the gateway) and pods in their own
 * namespaces. The plugin runs as a runtime runs it. The azure host knows the
 * node's ipconfigs as the fabric does: a permanent neighbour per pod address
 * pointing at the node's eth0 MAC (the fabric never ARPs for them).
 */
import { assert } from "../_support/assert.ts";
import { ifaces, sourceNode, staticIpam } from "../_support/azure_node.ts";
import { host } from "@vnet/address";
import { Ebtables, modeDriver, netlinkKernel } from "@vnet/azure-vnet";
import { AZURE_VNET_SRC } from "../../tools/testbed/mod.ts";
import { requireRoot } from "../_support/privilege.ts";
import {
  AzureNode,
  ip,
  ipJson,
  type IpRoute,
  links,
  neighbours,
  Netns,
  routes,
  v4addrs,
} from "../../tools/testbed/mod.ts";

/** A transparent-mode config of network `name` (default `azure`). */
function transparent(
  n: AzureNode,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return n.conf(staticIpam(n), {
    cniVersion: "1.1.0",
    mode: "transparent",
    ...extra,
  });
}

/** The fabric delivers the NIC's ipconfigs (either family) to its MAC. */
async function fabricDelivers(n: AzureNode, ips: string[]): Promise<void> {
  const mac = (await links(n.node.name)).find((l) => l.ifname === "eth0")
    ?.address ?? "";
  for (const a of ips) {
    await ip(
      ["neigh", "replace", a, "lladdr", mac, "dev", "ah0", "nud", "permanent"],
      n.azure.name,
    );
  }
}

/** `ip -6 route` of a netns, as `dst[ via gw] dev`. */
async function routes6(ns: string): Promise<string[]> {
  const rs = await ipJson<IpRoute[]>(["-6", "route", "show"], ns);
  return rs.map((r) =>
    `${r.dst}${r.gateway ? ` via ${r.gateway}` : ""} ${r.dev}`
  );
}

async function sysctl(ns: Netns, key: string): Promise<string> {
  return (await ns.exec("sysctl", ["-n", key])).trim();
}

async function hostVeths(n: AzureNode): Promise<string[]> {
  return (await links(n.node.name)).map((l) => l.ifname).filter((x) =>
    x.startsWith("azv")
  );
}

/** The node's routes through `azv*` veths, as `dst dev`. */
async function podRoutes(n: AzureNode): Promise<string[]> {
  return (await routes(n.node.name)).filter((r) => r.dev.startsWith("azv"))
    .map((r) => `${r.dst} ${r.dev}`);
}

Deno.test("azure-vnet transparent mode: ADD two pods, pings, node and pod state, CHECK, DEL, teardown", async (t) => {
  await using n = await sourceNode("10.100.0.0/24");
  const p1 = await n.pod();
  const p2 = await n.pod();
  await fabricDelivers(n, [n.addr(5), n.addr(6)]);
  assert.equal(await sysctl(n.node, "net.ipv4.ip_forward"), "0");
  const c = transparent(n);
  const r1 = await n.run("ADD", c, n.env("pod1", p1));
  const r2 = await n.run("ADD", c, n.env("pod2", p2));
  const [veth1, pod1] = ifaces(r1.json);
  const [veth2] = ifaces(r2.json);

  await t.step(
    "ADD returns the pods' addresses behind the virtual gateway",
    () => {
      assert.equal(r1.code, 0, JSON.stringify(r1));
      assert.equal(r2.code, 0, JSON.stringify(r2));
      assert.match(veth1?.name ?? "", /^azv[0-9a-f]{11}$/);
      assert.deepEqual(r1.json?.ips, [{
        address: "10.100.0.5/24",
        gateway: "169.254.1.1",
        interface: 1,
      }]);
      assert.deepEqual(r1.json?.routes, [
        { dst: "169.254.1.1/32" },
        { dst: "0.0.0.0/0", gw: "169.254.1.1" },
      ]);
    },
  );

  await t.step(
    "the node: /32 routes, proxy ARP, forwarding; no bridge, no ebtables, eth0 untouched",
    async () => {
      assert.deepEqual(
        (await podRoutes(n)).sort(),
        [
          `10.100.0.5 ${veth1?.name}`,
          `10.100.0.6 ${veth2?.name}`,
        ].sort(),
      );
      for (const v of [veth1?.name, veth2?.name]) {
        assert.equal(await sysctl(n.node, `net.ipv4.conf.${v}.proxy_arp`), "1");
      }
      assert.equal(await sysctl(n.node, "net.ipv4.ip_forward"), "1");
      const ls = await links(n.node.name);
      assert.ok(!ls.some((l) => l.ifname === "azure0"), "no bridge");
      assert.ok(ls.every((l) => l.master === undefined), "nothing enslaved");
      assert.deepEqual(await v4addrs(n.node.name, "eth0"), ["10.100.0.4/24"]);
      const def = (await routes(n.node.name)).find((r) => r.dst === "default");
      assert.deepEqual(
        [def?.dev, def?.gateway, def?.protocol, def?.metric],
        ["eth0", "10.100.0.1", "dhcp", 100],
      );
      assert.doesNotMatch(await n.ebtables(), /-j (snat|dnat|arpreply)/);
      const log = await Deno.readTextFile(`${n.dir}/azure-vnet.log`);
      assert.match(log, /IPv4 forwarding was "0" on the node; set/);
    },
  );

  await t.step(
    "the pod: its address, the gateway routes and a permanent neighbour",
    async () => {
      assert.deepEqual(await v4addrs(p1.name, "eth0"), ["10.100.0.5/24"]);
      const rs = (await routes(p1.name)).map((r) =>
        `${r.dst}${r.gateway ? ` via ${r.gateway}` : ""} ${r.dev}`
      );
      assert.deepEqual(rs, [
        "default via 169.254.1.1 eth0",
        "169.254.1.1 eth0",
      ]);
      const neigh = await neighbours(p1.name, "eth0");
      const gw = neigh.find((x) => x.dst === "169.254.1.1");
      assert.equal(gw?.lladdr, veth1?.mac);
      assert.ok(gw?.state.includes("PERMANENT"), JSON.stringify(gw));
      assert.equal(pod1?.name, "eth0");
    },
  );

  await t.step("pods reach each other, the node and the gateway", async () => {
    assert.ok(await p1.ping("10.100.0.6"), "pod1 -> pod2");
    assert.ok(await p2.ping("10.100.0.5"), "pod2 -> pod1");
    assert.ok(await p1.ping("10.100.0.4"), "pod1 -> node");
    assert.ok(await p1.ping("10.100.0.1"), "pod1 -> gateway");
    assert.ok(await p2.ping("10.100.0.1"), "pod2 -> gateway");
    assert.ok(await n.node.ping("10.100.0.6"), "node -> pod2");
    assert.ok(await n.azure.ping("10.100.0.5"), "gateway -> pod1");
  });

  await t.step("CHECK passes, and fails without the /32 route", async () => {
    const withPrev = { ...c, prevResult: r1.json };
    const ok = await n.run("CHECK", withPrev, n.env("pod1", p1));
    assert.equal(ok.code, 0, JSON.stringify(ok.json));
    await ip(
      ["route", "del", "10.100.0.5/32", "dev", veth1?.name ?? ""],
      n.node.name,
    );
    const bad = await n.run("CHECK", withPrev, n.env("pod1", p1));
    assert.equal(bad.json?.code, 106, JSON.stringify(bad.json));
    assert.match(
      String(bad.json?.msg),
      /route "10\.100\.0\.5\/32" to host veth "azv[0-9a-f]{11}" missing/,
    );
    assert.ok(!(await p1.ping("10.100.0.1")), "no way back to pod1 now");
    await ip(["neigh", "del", "169.254.1.1", "dev", "eth0"], p2.name);
    const noNeigh = await n.run(
      "CHECK",
      { ...c, prevResult: r2.json },
      n.env("pod2", p2),
    );
    assert.equal(noNeigh.json?.code, 106);
    assert.match(String(noNeigh.json?.msg), /neighbour "169\.254\.1\.1"/);
  });

  await t.step(
    "a repeated ADD of the attachment CHECK found broken attaches it again, whole, with its address",
    async () => {
      const again = await n.run("ADD", c, n.env("pod2", p2));
      assert.equal(again.code, 0, JSON.stringify(again.json));
      assert.deepEqual(again.json?.ips, r2.json?.ips);
      const check = await n.run(
        "CHECK",
        { ...c, prevResult: again.json },
        n.env("pod2", p2),
      );
      assert.equal(check.code, 0, JSON.stringify(check.json));
      assert.ok(await p2.ping("10.100.0.1"), "pod2 -> gateway");
      // Whole now: the next repeated ADD returns the same result.
      const same = await n.run("ADD", c, n.env("pod2", p2));
      assert.deepEqual(same.json, again.json);
    },
  );

  await t.step(
    "DEL removes the veth and its /32 route and releases the IP; DEL again succeeds",
    async () => {
      const d1 = await n.run(
        "DEL",
        { ...c, prevResult: r1.json },
        n.env("pod1", p1),
      );
      assert.equal(d1.code, 0, JSON.stringify(d1.json));
      const d2 = await n.run("DEL", c, { ...n.env("pod1", p1), CNI_NETNS: "" });
      assert.equal(d2.code, 0, JSON.stringify(d2.json));
      assert.deepEqual(await hostVeths(n), [veth2?.name]);
      assert.deepEqual(await podRoutes(n), [`10.100.0.6 ${veth2?.name}`]);
      assert.deepEqual((await links(p1.name)).map((l) => l.ifname), ["lo"]);
      assert.doesNotMatch(await n.ipamState(), /pod1/);
      assert.deepEqual(Object.keys((await n.state()).endpoints), ["pod2/eth0"]);
    },
  );

  await t.step(
    "teardown keeps the busy network, then --force removes it and leaves forwarding on for what relies on it",
    async () => {
      // A container runtime's bridge network that came up after the ADD and
      // relies on the node forwarding: a netns behind the node's dk0.
      await using ctr = await Netns.create();
      await ip(
        ["link", "add", "dk0", "type", "veth", "peer", "name", "eth0"]
          .concat(["netns", ctr.name]),
        n.node.name,
      );
      await ip(["addr", "add", "172.31.77.1/24", "dev", "dk0"], n.node.name);
      await ip(["link", "set", "dk0", "up"], n.node.name);
      await ip(["addr", "add", "172.31.77.2/24", "dev", "eth0"], ctr.name);
      await ip(["link", "set", "eth0", "up"], ctr.name);
      await ip(["route", "add", "default", "via", "172.31.77.1"], ctr.name);
      await ip(
        ["route", "add", "172.31.77.0/24", "via", "10.100.0.4"],
        n.azure.name,
      );
      assert.ok(await ctr.ping("10.100.0.1"), "forwarded before teardown");
      const before = await Promise.all(
        ["all.accept_redirects", "eth0.forwarding", "dk0.forwarding"].map((k) =>
          sysctl(n.node, `net.ipv4.conf.${k}`)
        ),
      );
      const busy = await n.stateTool(["teardown"]);
      assert.equal(busy.code, 1);
      const done = await n.stateTool(["teardown", "--force"]);
      assert.equal(done.code, 0, done.stdout + done.stderr);
      assert.deepEqual(await hostVeths(n), []);
      assert.deepEqual(await podRoutes(n), []);
      assert.deepEqual((await n.state()).networks, {});
      assert.equal(await sysctl(n.node, "net.ipv4.ip_forward"), "1");
      assert.deepEqual(
        await Promise.all(
          ["all.accept_redirects", "eth0.forwarding", "dk0.forwarding"].map((
            k,
          ) => sysctl(n.node, `net.ipv4.conf.${k}`)),
        ),
        before,
      );
      assert.ok(await ctr.ping("10.100.0.1"), "still forwarded after teardown");
      assert.ok(await n.node.ping("10.100.0.1"), "node -> gateway");
      assert.match(
        done.stdout,
        /^note: network azure: IPv4 forwarding \(net\.ipv4\.ip_forward\) stays on: turning it off would switch forwarding off on every interface/m,
      );
    },
  );
});

Deno.test("azure-vnet refuses a second mode on one master NIC, changing nothing", async (t) => {
  await using n = await sourceNode("10.101.0.0/24");
  const p1 = await n.pod();
  const p2 = await n.pod();
  const bridged = n.conf(staticIpam(n), { cniVersion: "1.1.0" });
  const r = await n.run("ADD", bridged, n.env("b1", p1));
  assert.equal(r.code, 0, JSON.stringify(r.json));
  const linksBefore = JSON.stringify(await links(n.node.name));
  const ebBefore = await n.ebtables();
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      "another network in transparent mode",
      transparent(n, { name: "routed" }),
      /network "azure" uses it in bridge mode, and a master NIC carries one mode/,
    ],
    [
      "the bridge network asking for transparent mode",
      transparent(n),
      /Network "azure" exists in bridge mode; the config asks for transparent mode/,
    ],
  ];
  for (const [what, conf, message] of cases) {
    await t.step(what, async () => {
      const add = await n.run("ADD", conf, n.env("t1", p2));
      assert.equal(add.code, 1);
      assert.equal(add.json?.code, 7, JSON.stringify(add.json));
      assert.match(String(add.json?.msg), message);
      assert.equal(JSON.stringify(await links(n.node.name)), linksBefore);
      assert.equal(await n.ebtables(), ebBefore);
      assert.doesNotMatch(await n.ipamState(), /"t1"/);
      assert.deepEqual((await links(p2.name)).map((l) => l.ifname), ["lo"]);
      assert.equal(await sysctl(n.node, "net.ipv4.ip_forward"), "0");
    });
  }
  assert.ok(await p1.ping(n.addr(1)), "the bridge pod still works");
});

Deno.test("azure-vnet transparent mode: kill -9 mid-ADD, then DEL (or GC) leaves nothing", async () => {
  requireRoot();
  await using n = await AzureNode.create("10.102.0.0/16");
  const conf = n.conf(16, { cniVersion: "1.1.0", mode: "transparent" });
  const pods = await n.pods(6);
  const first = await n.run("ADD", conf, n.env("keep", pods[0]));
  assert.equal(first.code, 0, first.stdout);
  const keepVeth = ifaces(first.json)[0]?.name;
  let killed = 0;
  for (let round = 0; round < 4; round++) {
    const runs = pods.slice(1).map((pod, i) => {
      const { child, done } = n.spawn("ADD", conf, n.env(`k${i}`, pod));
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already exited.
        }
      }, 80 + 90 * i + 30 * round);
      return done.finally(() => clearTimeout(timer));
    });
    for (const r of await Promise.all(runs)) {
      if (r.signal === "SIGKILL") killed++;
    }
    // Even rounds: DEL each attachment; odd rounds: GC keeping only "keep".
    if (round % 2 === 0) {
      for (const [i, pod] of pods.slice(1).entries()) {
        const d = await n.run("DEL", conf, n.env(`k${i}`, pod));
        assert.equal(d.code, 0, d.stdout);
      }
    } else {
      const gc = await n.run("GC", {
        ...conf,
        "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }],
      }, {});
      assert.equal(gc.code, 0, gc.stdout);
    }
    assert.deepEqual(await hostVeths(n), [keepVeth], `round ${round}`);
    assert.deepEqual(await podRoutes(n), [`${n.addr(256)} ${keepVeth}`]);
    assert.deepEqual(Object.keys((await n.state()).endpoints), ["keep/eth0"]);
    const ipam = await n.ipamState();
    assert.doesNotMatch(ipam, /"k\d"/, `round ${round}: IPAM released`);
    for (const pod of pods.slice(1)) {
      assert.deepEqual((await links(pod.name)).map((l) => l.ifname), ["lo"]);
    }
  }
  assert.ok(killed > 0, "some ADDs were killed");
  await fabricDelivers(n, [n.addr(256)]);
  assert.ok(await pods[0]?.ping(n.addr(1)), "the kept pod still works");
});

Deno.test("azure-vnet transparent mode, dual-stack: both families routed, pinged, checked and removed", async (t) => {
  const v6 = "fd00:100::/64";
  await using n = await dualStackNode("10.103.0.0/24", v6);
  const p1 = await n.pod();
  const p2 = await n.pod();
  const c = dualStack(n, v6);
  await fabricDelivers(n, [n.addr(5), n.addr(6), "fd00:100::5", "fd00:100::6"]);
  const r1 = await n.run("ADD", c, n.env("d1", p1));
  const r2 = await n.run("ADD", c, n.env("d2", p2));
  const [veth1] = ifaces(r1.json);

  await t.step(
    "ADD returns both addresses and a default route per family",
    () => {
      assert.equal(r1.code, 0, JSON.stringify(r1));
      assert.equal(r2.code, 0, JSON.stringify(r2));
      assert.deepEqual(r1.json?.ips, [
        { address: "10.103.0.5/24", gateway: "169.254.1.1", interface: 1 },
        {
          address: "fd00:100::5/64",
          gateway: "fe80::1234:5678:9abc",
          interface: 1,
        },
      ]);
      assert.deepEqual(r1.json?.routes, [
        { dst: "169.254.1.1/32" },
        { dst: "0.0.0.0/0", gw: "169.254.1.1" },
        { dst: "::/0", gw: "fe80::1234:5678:9abc" },
      ]);
    },
  );

  await t.step(
    "the node: /128 routes, proxy NDP, IPv6 forwarding",
    async () => {
      const rs = await routes6(n.node.name);
      assert.ok(rs.includes(`fd00:100::5 ${veth1?.name}`), rs.join("; "));
      assert.equal(
        await sysctl(n.node, `net.ipv6.conf.${veth1?.name}.proxy_ndp`),
        "1",
      );
      assert.equal(await sysctl(n.node, "net.ipv6.conf.all.forwarding"), "1");
      assert.match(
        await Deno.readTextFile(`${n.dir}/azure-vnet.log`),
        /IPv6 forwarding was "0" on the node; set/,
      );
    },
  );

  await t.step(
    "the pod: default via the link-local gateway, its permanent neighbour",
    async () => {
      const rs = await routes6(p1.name);
      assert.ok(
        rs.includes("default via fe80::1234:5678:9abc eth0"),
        rs.join("; "),
      );
      assert.ok(!rs.some((r) => r.startsWith("fd00:100::/64")), "no /64 route");
      const gw = (await neighbours(p1.name, "eth0")).find((x) =>
        x.dst === "fe80::1234:5678:9abc"
      );
      assert.equal(gw?.lladdr, veth1?.mac);
      assert.ok(gw?.state.includes("PERMANENT"), JSON.stringify(gw));
    },
  );

  await t.step(
    "pods reach each other, the node and the gateway over IPv6 and IPv4",
    async () => {
      assert.ok(await p1.ping("fd00:100::6"), "pod1 -> pod2 (6)");
      assert.ok(await p2.ping("fd00:100::5"), "pod2 -> pod1 (6)");
      assert.ok(await p1.ping("fd00:100::4"), "pod1 -> node (6)");
      assert.ok(await p1.ping("fd00:100::1"), "pod1 -> gateway (6)");
      assert.ok(await n.azure.ping("fd00:100::6"), "gateway -> pod2 (6)");
      assert.ok(await p1.ping("10.103.0.6"), "pod1 -> pod2 (4)");
      assert.ok(await p2.ping("10.103.0.1"), "pod2 -> gateway (4)");
    },
  );

  await t.step("CHECK passes, and fails without the /128 route", async () => {
    const withPrev = { ...c, prevResult: r1.json };
    const ok = await n.run("CHECK", withPrev, n.env("d1", p1));
    assert.equal(ok.code, 0, JSON.stringify(ok.json));
    await ip(
      ["-6", "route", "del", "fd00:100::5/128", "dev", veth1?.name ?? ""],
      n.node.name,
    );
    const bad = await n.run("CHECK", withPrev, n.env("d1", p1));
    assert.equal(bad.json?.code, 106, JSON.stringify(bad.json));
    assert.match(
      String(bad.json?.msg),
      /route "fd00:100::5\/128" to host veth/,
    );
  });

  await t.step(
    "DEL removes both routes and releases both addresses",
    async () => {
      for (const [id, pod] of [["d1", p1], ["d2", p2]] as const) {
        const d = await n.run("DEL", c, n.env(id, pod));
        assert.equal(d.code, 0, JSON.stringify(d.json));
      }
      assert.deepEqual(await hostVeths(n), []);
      assert.ok(!(await routes6(n.node.name)).some((r) => r.includes("azv")));
      assert.doesNotMatch(await n.ipamState(), /"d[12]"/);
    },
  );
});

Deno.test("state repair rebuilds a corrupt azure-vnet.json of a transparent node from the kernel; CHECK, DEL and teardown then work", async (t) => {
  await using n = await sourceNode("10.105.0.0/24");
  const p1 = await n.pod();
  const p2 = await n.pod();
  const c = transparent(n);
  const r1 = await n.run("ADD", c, n.env("rp1", p1));
  const r2 = await n.run("ADD", c, n.env("rp2", p2));
  assert.equal(r1.code + r2.code, 0, JSON.stringify([r1.json, r2.json]));
  const before = await n.state();
  await Deno.writeTextFile(n.statePath, "{ not json");

  await t.step("repair rebuilds the network and both endpoints", async () => {
    const r = await n.stateTool(["repair", "--network", "azure"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /azure-vnet\.json: rebuilt/);
    const after = await n.state();
    const net = after.networks.azure;
    assert.ok(net?.mode === "transparent", JSON.stringify(net));
    assert.deepEqual(
      [net.master, net.subnet, net.gateway, net.primaryIp],
      ["eth0", "10.105.0.0/24", "10.105.0.1", "10.105.0.4"],
    );
    assert.ok(!("forwardingSet" in net), "no ownership of forwarding");
    assert.deepEqual(
      Object.keys(after.endpoints).sort(),
      Object.keys(before.endpoints).sort(),
    );
    for (const [k, e] of Object.entries(before.endpoints)) {
      const got = after.endpoints[k];
      assert.deepEqual(
        [got?.hostVeth, got?.hostMac, got?.podMac, got?.netns, got?.addresses],
        [e.hostVeth, e.hostMac, e.podMac, e.netns, e.addresses],
        k,
      );
    }
  });

  await t.step(
    "CHECK passes on the rebuilt records, DEL and teardown clean up",
    async () => {
      const ok = await n.run(
        "CHECK",
        { ...c, prevResult: r1.json },
        n.env("rp1", p1),
      );
      assert.equal(ok.code, 0, JSON.stringify(ok.json));
      for (const [id, pod] of [["rp1", p1], ["rp2", p2]] as const) {
        const d = await n.run("DEL", c, n.env(id, pod));
        assert.equal(d.code, 0, JSON.stringify(d.json));
      }
      assert.deepEqual(await hostVeths(n), []);
      const done = await n.stateTool(["teardown"]);
      assert.equal(done.code, 0, done.stdout + done.stderr);
      assert.deepEqual((await n.state()).networks, {});
      assert.equal(await sysctl(n.node, "net.ipv4.ip_forward"), "1");
    },
  );
});

/** A dual-stack node running azure-vnet from source; fails when not root. */
async function dualStackNode(subnet: string, v6: string): Promise<AzureNode> {
  requireRoot();
  return await AzureNode.create(subnet, {
    argv: AZURE_VNET_SRC,
    baseEnv: { CNI_PATH: "/usr/lib/cni" },
    ipv6Subnet: v6,
  });
}

/** A transparent config over `.4` to `.7` of both subnets. */
function dualStack(n: AzureNode, v6: string): Record<string, unknown> {
  return transparent(n, {
    ipam: {
      ...staticIpam(n),
      ipv6Subnet: v6,
      ipv6Addresses: [5, 6, 7].map((i) => host(v6, i)),
    },
  });
}

/** `count` random hex digits. */
function randomHex(count: number): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, count);
}

/** `ip -6 addr show tentative` of a netns: empty when no address waits. */
async function tentative(ns: string): Promise<string> {
  return (await ip(["-6", "addr", "show", "tentative"], ns)).trim();
}

Deno.test("azure-vnet transparent mode, dual-stack: a second interface (eth1) keeps the pod's IPv6 to the subnet working", async (t) => {
  const v6 = "fd00:107::/64";
  await using n = await dualStackNode("10.107.0.0/24", v6);
  const c = dualStack(n, v6);
  const p1 = await n.pod();
  const p2 = await n.pod();
  await fabricDelivers(n, [
    ...[5, 6, 7].map((i) => n.addr(i)),
    ...[5, 6, 7].map((i) => `fd00:107::${i}`),
  ]);
  const r1 = await n.run("ADD", c, n.env("m1", p1));
  const r2 = await n.run("ADD", c, n.env("m2", p2));
  const eth1 = { ...n.env("m1", p1), CNI_IFNAME: "eth1" };
  const r3 = await n.run("ADD", c, eth1);

  await t.step(
    "eth1's result: its IPv6 subnet via the link-local gateway, no gateway it cannot reach",
    () => {
      for (const r of [r1, r2, r3]) assert.equal(r.code, 0, JSON.stringify(r));
      assert.deepEqual(r3.json?.ips, [
        { address: "10.107.0.7/24", gateway: "10.107.0.1", interface: 1 },
        {
          address: "fd00:107::7/64",
          gateway: "fe80::1234:5678:9abc",
          interface: 1,
        },
      ]);
      assert.deepEqual(r3.json?.routes, [
        { dst: "fd00:107::/64", gw: "fe80::1234:5678:9abc" },
      ]);
    },
  );

  await t.step(
    "pod1: the /64 through the gateway on eth1, no on-link /64",
    async () => {
      const rs = await routes6(p1.name);
      assert.ok(
        rs.includes("fd00:107::/64 via fe80::1234:5678:9abc eth1"),
        rs.join("; "),
      );
      assert.ok(
        rs.includes("default via fe80::1234:5678:9abc eth0"),
        rs.join("; "),
      );
      assert.ok(!rs.some((r) => /^fd00:107::\/64 eth/.test(r)), rs.join("; "));
    },
  );

  await t.step(
    "pod1 reaches pod2 over both families, the node reaches both of pod1's addresses",
    async () => {
      assert.ok(await p1.ping("fd00:107::6"), "pod1 -> pod2 (6)");
      assert.ok(await p2.ping("fd00:107::5"), "pod2 -> pod1 eth0 (6)");
      assert.ok(await p2.ping("fd00:107::7"), "pod2 -> pod1 eth1 (6)");
      assert.ok(await p1.ping("10.107.0.6"), "pod1 -> pod2 (4)");
      assert.ok(await n.node.ping("fd00:107::5"), "node -> pod1 eth0 (6)");
      assert.ok(await n.node.ping("fd00:107::7"), "node -> pod1 eth1 (6)");
      assert.ok(await p1.ping("fd00:107::1"), "pod1 -> gateway (6)");
    },
  );

  await t.step("CHECK of eth1 and of eth0 pass", async () => {
    const check1 = await n.run("CHECK", { ...c, prevResult: r3.json }, eth1);
    assert.equal(check1.code, 0, JSON.stringify(check1.json));
    const check0 = await n.run(
      "CHECK",
      { ...c, prevResult: r1.json },
      n.env("m1", p1),
    );
    assert.equal(check0.code, 0, JSON.stringify(check0.json));
  });

  await t.step("DEL of eth1 leaves eth0 working", async () => {
    const d = await n.run("DEL", c, eth1);
    assert.equal(d.code, 0, JSON.stringify(d.json));
    assert.ok(await p1.ping("fd00:107::6"), "pod1 -> pod2 (6)");
    assert.ok(await n.node.ping("fd00:107::5"), "node -> pod1 (6)");
  });
});

Deno.test("azure-vnet transparent mode, dual-stack: with all.accept_dad=1 nothing is tentative after ADD and the first ping -6 gets through", async () => {
  const v6 = "fd00:108::/64";
  await using n = await dualStackNode("10.108.0.0/24", v6);
  const c = dualStack(n, v6);
  const p1 = await n.pod();
  // A node (and a pod netns that inherited it) that asks every interface
  // for DAD: the kernel skips it only when "all" and the device both say 0.
  for (const ns of [n.node, p1]) {
    await ns.exec("sysctl", ["-qw", "net.ipv6.conf.all.accept_dad=1"]);
  }
  const r = await n.run("ADD", c, n.env("dad1", p1));
  assert.equal(r.code, 0, JSON.stringify(r.json));
  assert.equal(await tentative(n.node.name), "", "node: nothing tentative");
  assert.equal(await tentative(p1.name), "", "pod: nothing tentative");
  const [veth] = ifaces(r.json);
  const hostLl = await ip(
    ["-6", "addr", "show", "dev", veth?.name ?? "", "scope", "link"],
    n.node.name,
  );
  assert.match(hostLl, /inet6 fe80::/, "the host veth has a link-local");
  // ping -c1 -W1: one echo, a second to answer.
  assert.ok(await n.node.ping("fd00:108::5"), "node -> pod (6), first try");
  assert.ok(await p1.ping("fd00:108::4"), "pod -> node (6)");
});

Deno.test("azure-vnet transparent mode: GC leaves the veth another network's ADD is still building", async (t) => {
  await using n = await sourceNode("10.109.0.0/24");
  const a1 = await n.pod();
  const c = transparent(n);
  const r = await n.run("ADD", c, n.env("a1", a1));
  assert.equal(r.code, 0, JSON.stringify(r.json));
  const [own] = ifaces(r.json);
  await fabricDelivers(n, [n.addr(5)]);
  // Network B's ADDs, mid-way: host veths up, their pod ends in the pods'
  // netns, no route yet (B's subnet is 10.209.0.0/24).
  const busy = `azvb${randomHex(10)}`;
  const stuck = `azvs${randomHex(10)}`;
  const pods: Record<string, Netns> = {};
  for (const v of [busy, stuck]) {
    const pod = pods[v] = await n.pod();
    await ip(
      ["link", "add", v, "type", "veth", "peer", "name", "eth0", "netns"]
        .concat([pod.name]),
      n.node.name,
    );
    await ip(["link", "set", v, "up"], n.node.name);
  }

  await t.step(
    "the search looks twice; B's ADD routes its veth meanwhile, and that one is not taken",
    async () => {
      using host = netlinkKernel().netns(n.node.path);
      const found = await modeDriver("transparent").leftovers(
        { host, ebtables: new Ebtables() },
        {
          state: await n.state(),
          network: "azure",
          graceMs: 0,
          sleep: async () => {
            await ip(
              ["route", "add", "10.209.0.9/32", "dev", busy],
              n.node.name,
            );
          },
        },
      );
      assert.deepEqual(found.veths, [stuck]);
    },
  );

  await t.step(
    "GC of network A keeps B's veth and its pod end; a veth still unrouted after the grace goes",
    async () => {
      const gc = await n.run("GC", {
        ...c,
        "cni.dev/valid-attachments": [{ containerID: "a1", ifname: "eth0" }],
      }, {});
      assert.equal(gc.code, 0, gc.stdout);
      assert.deepEqual(
        (await hostVeths(n)).sort(),
        [own?.name, busy].sort(),
      );
      assert.deepEqual(
        (await links(pods[busy]?.name ?? "")).map((l) => l.ifname),
        ["lo", "eth0"],
      );
      assert.deepEqual(
        (await links(pods[stuck]?.name ?? "")).map((l) => l.ifname),
        ["lo"],
      );
      assert.deepEqual(Object.keys((await n.state()).endpoints), ["a1/eth0"]);
      assert.ok(await a1.ping(n.addr(1)), "a1 still works");
    },
  );
});
