import assert from "node:assert/strict";
import { eui64LinkLocal } from "@vnet/address";
import type { CmdArgs, CniCommand } from "@vnet/cni";
import { FakeKernel, type FakeNs } from "./_fake_kernel.ts";
import {
  forget,
  NETNS,
  pluginArgs,
  pluginGcArgs,
  setupPlugin,
} from "./_plugin_harness.ts";
import { statePath, withState } from "./state.ts";
import { modeDriver } from "./mode.ts";
import { teardown } from "./teardown.ts";
import { Ebtables } from "./ebtables.ts";
import { FakeEbtables } from "./_fake_ebtables.ts";

const TRANSPARENT = { mode: "transparent" };

function args(
  command: CniCommand,
  containerId: string,
  netns = NETNS,
): CmdArgs {
  return pluginArgs(command, containerId, { netns, config: TRANSPARENT });
}

function hostVeths(kernel: FakeKernel): string[] {
  return [...kernel.hostNs.linksByName.keys()].filter((n) =>
    n.startsWith("azv")
  );
}

function onlyVeth(kernel: FakeKernel): string {
  const [veth, ...more] = hostVeths(kernel);
  assert.ok(veth !== undefined && more.length === 0, "one host veth");
  return veth;
}

function routesOf(ns: FakeNs, link: string): string[] {
  return ns.routes(link).map((r) => `${r.dst}${r.gw ? ` via ${r.gw}` : ""}`);
}

Deno.test("cmdAdd() in transparent mode routes the pod through the node, with no bridge and no ebtables", async (t) => {
  await using env = await setupPlugin();
  const { handlers, kernel, pod, rules } = env;
  const result = await handlers.cmdAdd(args("ADD", "c1"));
  const veth = onlyVeth(kernel);
  const host = kernel.hostNs;
  const hostMac = host.link(veth)?.mac;

  await t.step("the result names the virtual gateway", () => {
    assert.deepEqual(result.ips, [{
      address: "10.0.0.5/24",
      gateway: "169.254.1.1",
      interface: 1,
    }]);
    assert.deepEqual(result.routes, [
      { dst: "169.254.1.1/32" },
      { dst: "0.0.0.0/0", gw: "169.254.1.1" },
    ]);
    assert.deepEqual(result.interfaces?.[0], { name: veth, mac: hostMac });
  });

  await t.step(
    "the node: /32 route, proxy ARP, forwarding; eth0 as it was",
    () => {
      const link = host.link(veth);
      assert.equal(link?.masterIndex, undefined);
      assert.ok(link?.up === true, "up");
      assert.deepEqual(routesOf(host, veth), ["10.0.0.5/32"]);
      assert.equal(host.sysctl(`net.ipv4.conf.${veth}.proxy_arp`), "1");
      assert.equal(host.sysctl("net.ipv4.ip_forward"), "1");
      assert.deepEqual(host.addrs("eth0").map((a) => a.cidr), ["10.0.0.4/24"]);
      assert.deepEqual(routesOf(host, "eth0"), ["0.0.0.0/0 via 10.0.0.1"]);
      assert.equal(host.link("azure0"), undefined);
      assert.deepEqual([rules.rules, rules.lists, rules.restores], [[], 0, []]);
    },
  );

  await t.step("the pod: address, gateway routes, permanent neighbour", () => {
    assert.deepEqual(pod.addrs("eth0").map((a) => a.cidr), ["10.0.0.5/24"]);
    assert.deepEqual(routesOf(pod, "eth0"), [
      "169.254.1.1/32",
      "0.0.0.0/0 via 169.254.1.1",
    ]);
    assert.deepEqual(pod.neighs("eth0"), [{
      ip: "169.254.1.1",
      mac: hostMac,
      permanent: true,
    }]);
  });

  await t.step(
    "the record says transparent, and claims no ownership of forwarding",
    async () => {
      const st = JSON.parse(await Deno.readTextFile(statePath(env.dir)));
      assert.equal(st.networks.azure.mode, "transparent");
      assert.ok(!("forwardingSet" in st.networks.azure));
      assert.equal(st.networks.azure.master, "eth0");
      assert.equal(st.networks.azure.primaryIp, "10.0.0.4");
      assert.equal(st.networks.azure.bridge, undefined);
    },
  );

  await t.step("a repeated ADD returns the same result", async () => {
    assert.deepEqual(await handlers.cmdAdd(args("ADD", "c1")), result);
    assert.equal(onlyVeth(kernel), veth);
  });

  await t.step("CHECK passes, then names each thing removed", async () => {
    const check = { ...args("CHECK", "c1") };
    await handlers.cmdCheck?.(check);
    const drifts: [string, () => void, RegExp][] = [
      [
        "the /32 route",
        () => host.routeDel({ dst: "10.0.0.5/32", link: veth }),
        /route "10\.0\.0\.5\/32" to host veth "azv[0-9a-f]{11}" missing/,
      ],
      [
        "the neighbour",
        () => pod.neighDel("eth0", "169.254.1.1"),
        /neighbour "169\.254\.1\.1" on "eth0" missing/,
      ],
      [
        "proxy ARP",
        () => host.setSysctl(`net.ipv4.conf.${veth}.proxy_arp`, "0"),
        /proxy ARP is off/,
      ],
      [
        "forwarding",
        () => host.setSysctl("net.ipv4.ip_forward", "0"),
        /IPv4 forwarding is off/,
      ],
      [
        "the default route",
        () => pod.routeDel({ dst: "0.0.0.0/0", link: "eth0" }),
        /route "0\.0\.0\.0\/0" via 169\.254\.1\.1 missing/,
      ],
    ];
    for (const [, drift, message] of drifts) {
      drift();
      await assert.rejects(handlers.cmdCheck?.(check) ?? Promise.resolve(), {
        name: "CniError",
        code: 106,
        message,
      });
    }
  });

  await t.step(
    "DEL removes the veth and its route, then DEL again",
    async () => {
      await handlers.cmdDel(args("DEL", "c1"));
      await handlers.cmdDel(args("DEL", "c1", ""));
      assert.deepEqual(hostVeths(kernel), []);
      assert.deepEqual(host.routeList.filter((r) => r.link !== "eth0"), []);
      assert.deepEqual([...pod.linksByName.keys()], ["lo"]);
      assert.deepEqual(await env.endpoints(), []);
      assert.equal(env.ipam.held.size, 0);
    },
  );
});

Deno.test("cmdAdd() in transparent mode logs and keeps forwarding that was already on", async () => {
  await using env = await setupPlugin();
  env.kernel.hostNs.setSysctl("net.ipv4.ip_forward", "1");
  env.kernel.calls.length = 0;
  await env.handlers.cmdAdd(args("ADD", "c1"));
  assert.ok(!env.kernel.calls.includes("sysctl net.ipv4.ip_forward=1"));
  assert.equal(env.kernel.hostNs.sysctl("net.ipv4.ip_forward"), "1");
});

Deno.test("cmdAdd() turns forwarding on again when it went off (a reboot)", async () => {
  await using env = await setupPlugin();
  await env.handlers.cmdAdd(args("ADD", "c1"));
  env.kernel.hostNs.setSysctl("net.ipv4.ip_forward", "0");
  env.kernel.addNetns("/run/netns/p2");
  await env.handlers.cmdAdd(args("ADD", "c2", "/run/netns/p2"));
  assert.equal(env.kernel.hostNs.sysctl("net.ipv4.ip_forward"), "1");
});

Deno.test("cmdAdd() refuses a second mode on one master NIC, and a mode change of a network, leaking nothing", async (t) => {
  await using env = await setupPlugin();
  const { handlers, kernel, ipam } = env;
  await handlers.cmdAdd(pluginArgs("ADD", "b1"));
  kernel.addNetns("/run/netns/p2");
  const before = JSON.stringify(kernel.hostNs.links());
  await t.step("another network in transparent mode on eth0", async () => {
    const other = pluginArgs("ADD", "t1", {
      netns: "/run/netns/p2",
      config: { ...TRANSPARENT, name: "routed" },
    });
    await assert.rejects(handlers.cmdAdd(other), {
      name: "CniError",
      code: 7,
      message:
        /network "azure" uses it in bridge mode, and a master NIC carries one mode/,
    });
  });
  await t.step("the bridge network asking for transparent mode", async () => {
    await assert.rejects(
      handlers.cmdAdd(args("ADD", "t2", "/run/netns/p2")),
      {
        name: "CniError",
        code: 7,
        message:
          /"azure" exists in bridge mode; the config asks for transparent/,
      },
    );
  });
  await t.step("nothing leaked", () => {
    assert.equal(JSON.stringify(kernel.hostNs.links()), before);
    assert.deepEqual([...ipam.held.keys()], ["b1/eth0"]);
    assert.equal(kernel.hostNs.sysctl("net.ipv4.ip_forward"), "0");
  });
  await t.step("STATUS of the mismatched config answers 50", async () => {
    await assert.rejects(
      handlers.cmdStatus?.(args("STATUS", "")) ?? Promise.resolve(),
      { name: "CniError", code: 50, message: /exists in bridge mode/ },
    );
  });
});

Deno.test("cmdAdd() refuses bridge mode on a master a transparent network routes through", async () => {
  await using env = await setupPlugin();
  await env.handlers.cmdAdd(args("ADD", "t1"));
  env.kernel.addNetns("/run/netns/p2");
  await assert.rejects(
    env.handlers.cmdAdd(
      pluginArgs("ADD", "b1", {
        netns: "/run/netns/p2",
        config: { name: "bridged" },
      }),
    ),
    { name: "CniError", code: 7, message: /"azure" uses it in transparent/ },
  );
  assert.equal(env.kernel.hostNs.link("azure0"), undefined);
  assert.deepEqual([...env.ipam.held.keys()], ["t1/eth0"]);
});

Deno.test("cmdAdd() in transparent mode rolls the endpoint back when a step fails", async () => {
  await using env = await setupPlugin();
  const host = env.kernel.hostNs;
  const setSysctl = host.setSysctl.bind(host);
  host.setSysctl = (key, value) => {
    if (key.endsWith(".proxy_arp")) throw new Error("sysctl refused");
    setSysctl(key, value);
  };
  await assert.rejects(env.handlers.cmdAdd(args("ADD", "c1")), {
    name: "CniError",
    code: 103,
  });
  assert.deepEqual(hostVeths(env.kernel), []);
  assert.deepEqual([...env.pod.linksByName.keys()], ["lo"]);
  assert.equal(env.ipam.held.size, 0);
  assert.deepEqual(await env.endpoints(), []);
});

Deno.test("cmdDel() in transparent mode keeps the address while its veth is left", async () => {
  await using env = await setupPlugin();
  const { handlers, kernel, ipam } = env;
  await handlers.cmdAdd(args("ADD", "c1"));
  const veth = onlyVeth(kernel);
  const host = kernel.hostNs;
  const delLink = host.delLink.bind(host);
  host.delLink = (name) =>
    Promise.reject(new Deno.errors.Busy(`veth "${name}" busy`));
  await assert.rejects(handlers.cmdDel(args("DEL", "c1", "")), {
    name: "CniError",
    code: 103,
    message: /Cannot delete veth "azv/,
  });
  // The veth still routes the address: it is not handed out again.
  assert.deepEqual(routesOf(host, veth), ["10.0.0.5/32"]);
  assert.equal(ipam.held.get("c1/eth0"), "10.0.0.5");
  assert.ok(!ipam.calls.includes("DEL c1"), ipam.calls.join(", "));
  assert.deepEqual(await env.endpoints(), ["c1/eth0"]);
  host.delLink = delLink;
  await handlers.cmdDel(args("DEL", "c1", ""));
  assert.deepEqual(hostVeths(kernel), []);
  assert.ok(!ipam.held.has("c1/eth0"));
  assert.deepEqual(await env.endpoints(), []);
});

Deno.test("cmdDel() and cmdGc() in transparent mode remove what killed ADDs left", async () => {
  await using env = await setupPlugin();
  const { handlers, kernel } = env;
  for (const [i, c] of ["c1", "c2", "c3"].entries()) {
    kernel.addNetns(`/run/netns/gc${i}`);
    await handlers.cmdAdd(args("ADD", c, `/run/netns/gc${i}`));
  }
  // c2 and c3: killed before their record; then DEL of c2 without one.
  await forget(env.dir, "c2/eth0");
  await forget(env.dir, "c3/eth0");
  // Not ours: a veth on no route of the subnet.
  kernel.hostNs.addLink("azvforeign0000", { kind: "veth" });
  kernel.hostNs.routeReplace({ dst: "192.168.0.9/32", link: "azvforeign0000" });
  await handlers.cmdDel(args("DEL", "c2", ""));
  assert.equal(hostVeths(kernel).length, 3);
  await handlers.cmdGc?.(pluginGcArgs(["c1"], { config: TRANSPARENT }));
  assert.deepEqual(await env.endpoints(), ["c1/eth0"]);
  const st = JSON.parse(await Deno.readTextFile(statePath(env.dir)));
  assert.deepEqual(
    hostVeths(kernel).sort(),
    [st.endpoints["c1/eth0"].hostVeth, "azvforeign0000"].sort(),
  );
  assert.deepEqual([...env.ipam.held.keys()], ["c1/eth0"]);
});

Deno.test("teardown() removes a transparent network and leaves IPv4 forwarding on, whoever turned it on", async (t) => {
  await using env = await setupPlugin();
  await env.handlers.cmdAdd(args("ADD", "c1"));
  const kernel = env.kernel;
  const rules = new FakeEbtables();
  const ebtables = new Ebtables({ run: rules.run, restore: rules.restore });
  await t.step("busy without --force", async () => {
    const r = await teardown(env.dir, { kernel, ebtables });
    assert.deepEqual(r.busy, [{ network: "azure", endpoints: ["c1/eth0"] }]);
    assert.equal(kernel.hostNs.sysctl("net.ipv4.ip_forward"), "1");
  });
  await t.step("--force: the pod's host side and the network go", async () => {
    const r = await teardown(env.dir, { kernel, ebtables, force: true });
    assert.deepEqual(r.removed, ["azure"]);
    assert.equal(r.notes.length, 1);
    assert.match(
      r.notes[0] ?? "",
      /^network azure: IPv4 forwarding \(net\.ipv4\.ip_forward\) stays on: /,
    );
    assert.deepEqual(hostVeths(kernel), []);
    assert.equal(kernel.hostNs.sysctl("net.ipv4.ip_forward"), "1");
    assert.ok(!kernel.calls.includes("sysctl net.ipv4.ip_forward=0"));
    assert.deepEqual(rules.rules, []);
    const st = JSON.parse(await Deno.readTextFile(statePath(env.dir)));
    assert.deepEqual(st.networks, {});
  });
  await t.step(
    "records of earlier versions (forwardingSet), torn down in either order",
    async () => {
      for (const order of [["a", "b"], ["b", "a"]]) {
        kernel.hostNs.setSysctl("net.ipv4.ip_forward", "0");
        await env.handlers.cmdAdd(args("ADD", "c2"));
        // As an earlier version wrote them: "a" had turned forwarding on.
        await withState(env.dir, async (s) => {
          const net = s.state.networks.azure;
          assert.ok(net?.mode === "transparent");
          s.state.networks.a = { ...net, name: "a", forwardingSet: true };
          s.state.networks.b = { ...net, name: "b", forwardingSet: false };
          delete s.state.networks.azure;
          delete s.state.endpoints["c2/eth0"];
          await s.save();
        });
        kernel.calls.length = 0;
        for (const network of order) {
          const r = await teardown(env.dir, { kernel, ebtables, network });
          assert.deepEqual(r.removed, [network]);
          assert.match(
            r.notes.join(),
            network === "a"
              ? /stays on \(this network had turned it on\)/
              : /stays on: /,
          );
          assert.equal(kernel.hostNs.sysctl("net.ipv4.ip_forward"), "1");
        }
        assert.ok(!kernel.calls.includes("sysctl net.ipv4.ip_forward=0"));
      }
    },
  );
});

Deno.test("cmdAdd() in transparent mode plumbs IPv6 too (dual-stack), and CHECK and DEL cover it", async (t) => {
  await using env = await setupPlugin();
  env.ipam.dualStack = true;
  const { handlers, kernel, pod } = env;
  const result = await handlers.cmdAdd(args("ADD", "c1"));
  const veth = onlyVeth(kernel);
  const host = kernel.hostNs;
  const hostMac = host.link(veth)?.mac;
  await t.step(
    "the result: both addresses behind their virtual gateways",
    () => {
      assert.deepEqual(result.ips, [
        { address: "10.0.0.5/24", gateway: "169.254.1.1", interface: 1 },
        {
          address: "fd00::5/64",
          gateway: "fe80::1234:5678:9abc",
          interface: 1,
        },
      ]);
      assert.deepEqual(result.routes, [
        { dst: "169.254.1.1/32" },
        { dst: "0.0.0.0/0", gw: "169.254.1.1" },
        { dst: "::/0", gw: "fe80::1234:5678:9abc" },
      ]);
    },
  );
  await t.step("the node: /128 route, proxy NDP, IPv6 forwarding", () => {
    assert.deepEqual(routesOf(host, veth), ["10.0.0.5/32", "fd00::5/128"]);
    assert.equal(host.sysctl(`net.ipv6.conf.${veth}.proxy_ndp`), "1");
    assert.equal(host.sysctl("net.ipv6.conf.all.forwarding"), "1");
  });
  await t.step(
    "no DAD on either end: no kernel-made link-local, ours and the pod's IPv6 with nodad",
    () => {
      const podMac = pod.link("eth0")?.mac ?? "";
      for (
        const [ns, link, mac] of [[host, veth, hostMac], [
          pod,
          "eth0",
          podMac,
        ]] as const
      ) {
        assert.equal(ns.sysctl(`net.ipv6.conf.${link}.addr_gen_mode`), "1");
        const ll = `${eui64LinkLocal(mac ?? "")}/64`;
        assert.ok(ns.addrs(link).some((a) => a.cidr === ll && a.scope === 253));
        assert.ok(ns.nodad.has(`${link}/${ll}`), `${link} ${ll} nodad`);
      }
      assert.deepEqual([...pod.nodad].sort(), [
        "eth0/fd00::5/64",
        `eth0/${eui64LinkLocal(podMac)}/64`,
      ]);
    },
  );
  await t.step(
    "the pod: both gateways' permanent neighbours and routes",
    () => {
      assert.deepEqual(
        pod.neighs("eth0").map((n) => [n.ip, n.mac, n.permanent]),
        [
          ["169.254.1.1", hostMac, true],
          ["fe80::1234:5678:9abc", hostMac, true],
        ],
      );
      assert.deepEqual(routesOf(pod, "eth0"), [
        "169.254.1.1/32",
        "0.0.0.0/0 via 169.254.1.1",
        "::/0 via fe80::1234:5678:9abc",
      ]);
    },
  );
  await t.step(
    "CHECK names the missing /128 route, proxy NDP and link-local",
    async () => {
      await handlers.cmdCheck?.(args("CHECK", "c1"));
      host.routeDel({ dst: "fd00::5/128", link: veth });
      host.setSysctl(`net.ipv6.conf.${veth}.proxy_ndp`, "0");
      host.addrDel(veth, `${eui64LinkLocal(hostMac ?? "")}/64`);
      await assert.rejects(
        handlers.cmdCheck?.(args("CHECK", "c1")) ?? Promise.resolve(),
        {
          name: "CniError",
          code: 106,
          message:
            /proxy NDP is off .*no IPv6 link-local address.*route "fd00::5\/128" to host veth/,
        },
      );
    },
  );
  await t.step("DEL removes it all", async () => {
    await handlers.cmdDel(args("DEL", "c1"));
    assert.deepEqual(hostVeths(kernel), []);
    assert.deepEqual(host.routeList.filter((r) => r.link !== "eth0"), []);
    assert.equal(env.ipam.held.size, 0);
  });
});

Deno.test("cmdAdd() in transparent mode gives a second interface no gateway routes, keeping the first one's", async () => {
  await using env = await setupPlugin();
  const { handlers, pod } = env;
  await handlers.cmdAdd(args("ADD", "m1"));
  const eth1 = { ...args("ADD", "m1"), ifName: "eth1" };
  const r1 = await handlers.cmdAdd(eth1);
  assert.deepEqual(r1.routes, []);
  assert.deepEqual(r1.ips, [{
    address: "10.0.0.6/24",
    gateway: "10.0.0.1",
    interface: 1,
  }]);
  assert.deepEqual(routesOf(pod, "eth0"), [
    "169.254.1.1/32",
    "0.0.0.0/0 via 169.254.1.1",
  ]);
  assert.deepEqual(routesOf(pod, "eth1"), []);
  await handlers.cmdCheck?.({ ...eth1, command: "CHECK" });
  await handlers.cmdDel({ ...eth1, command: "DEL" });
  assert.deepEqual(routesOf(pod, "eth0"), [
    "169.254.1.1/32",
    "0.0.0.0/0 via 169.254.1.1",
  ]);
  await handlers.cmdCheck?.(args("CHECK", "m1"));
});

Deno.test("cmdAdd() in transparent mode routes a second dual-stack interface's IPv6 subnet through the link-local gateway", async () => {
  await using env = await setupPlugin();
  env.ipam.dualStack = true;
  const { handlers, pod } = env;
  await handlers.cmdAdd(args("ADD", "m1"));
  const eth1 = { ...args("ADD", "m1"), ifName: "eth1" };
  const eth2 = { ...args("ADD", "m1"), ifName: "eth2" };
  const r1 = await handlers.cmdAdd(eth1);
  const r2 = await handlers.cmdAdd(eth2);
  // No default route (eth0 has both), yet the /64 leaves through the
  // gateway, which answers on every interface: IPv6 reports it.
  assert.deepEqual(r1.routes, [
    { dst: "fd00::/64", gw: "fe80::1234:5678:9abc" },
  ]);
  assert.deepEqual(r1.ips, [
    { address: "10.0.0.6/24", gateway: "10.0.0.1", interface: 1 },
    { address: "fd00::6/64", gateway: "fe80::1234:5678:9abc", interface: 1 },
  ]);
  assert.deepEqual(routesOf(pod, "eth1"), [
    "fd00::/64 via fe80::1234:5678:9abc",
  ]);
  // A third interface: the subnet route stays with eth1.
  assert.deepEqual(r2.routes, []);
  assert.equal(r2.ips?.[1]?.gateway, "fe80::1234:5678:9abc");
  assert.deepEqual(routesOf(pod, "eth2"), []);
  assert.deepEqual(routesOf(pod, "eth0"), [
    "169.254.1.1/32",
    "0.0.0.0/0 via 169.254.1.1",
    "::/0 via fe80::1234:5678:9abc",
  ]);
  for (const a of [eth1, eth2]) {
    await handlers.cmdCheck?.({ ...a, command: "CHECK" });
  }
  await handlers.cmdCheck?.(args("CHECK", "m1"));
  pod.routeDel({ dst: "fd00::/64", link: "eth1" });
  await assert.rejects(
    handlers.cmdCheck?.({ ...eth1, command: "CHECK" }) ?? Promise.resolve(),
    {
      name: "CniError",
      code: 106,
      message: /route "fd00::\/64" via fe80::1234:5678:9abc missing/,
    },
  );
});

Deno.test("cmdGc()'s search in transparent mode takes a veth that routes nothing only when a second look finds it still so", async () => {
  await using env = await setupPlugin();
  const { handlers, kernel, rules } = env;
  const ebtables = new Ebtables({ run: rules.run, restore: rules.restore });
  await handlers.cmdAdd(args("ADD", "a1"));
  const host = kernel.hostNs;
  // Another network's ADDs in flight: veths, pod ends, no route yet.
  for (const [i, v] of ["azvbusy0000000", "azvstuck000000"].entries()) {
    kernel.addNetns(`/run/netns/b${i}`);
    host.addVeth({
      name: v,
      peerName: "eth0",
      peerNetns: `/run/netns/b${i}`,
      mtu: 1500,
    });
  }
  const slept: number[] = [];
  const found = await modeDriver("transparent").leftovers(
    { host, ebtables },
    {
      state: JSON.parse(await Deno.readTextFile(statePath(env.dir))),
      network: "azure",
      graceMs: 1234,
      sleep: (ms) => {
        slept.push(ms);
        // Meanwhile one of them gets its pod's route, in its own subnet.
        host.routeReplace({ dst: "10.9.0.5/32", link: "azvbusy0000000" });
        return Promise.resolve();
      },
    },
  );
  assert.deepEqual(slept, [1234]);
  assert.deepEqual(found.veths, ["azvstuck000000"]);
  // Nothing to wait for: no second look.
  slept.length = 0;
  host.delLinkSync("azvstuck000000");
  const none = await modeDriver("transparent").leftovers(
    { host, ebtables },
    {
      state: JSON.parse(await Deno.readTextFile(statePath(env.dir))),
      network: "azure",
      sleep: () => Promise.reject(new Error("no second look expected")),
    },
  );
  assert.deepEqual(none.veths, []);
});
