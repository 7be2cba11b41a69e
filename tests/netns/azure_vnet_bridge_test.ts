/**
 * azure-vnet in bridge mode against real namespaces: a "node" netns whose
 * eth0 is a veth to an "azure host" netns (the gateway, a plain router), and
 * pods in their own namespaces. The plugin runs as a runtime runs it: a
 * subprocess inside the node netns with CNI_* env and the config on stdin.
 */
import { assert } from "../_support/assert.ts";
import {
  assertStateMatchesKernel,
  ifaces,
  sourceNode,
  staticIpam,
} from "../_support/azure_node.ts";
import {
  type AzureNode,
  ip,
  type IpRoute,
  links,
  neighbours,
  type Netns,
  routes,
  v4addrs,
} from "../../tools/testbed/mod.ts";

function hostLocal(n: AzureNode, dataDir: string): Record<string, unknown> {
  return {
    type: "host-local",
    dataDir,
    ranges: [[{
      subnet: n.subnet,
      rangeStart: n.addr(10),
      rangeEnd: n.addr(20),
      gateway: n.addr(1),
    }]],
  };
}

Deno.test("azure-vnet bridge mode: ADD, connectivity, CHECK, repeated ADD, DEL, DEL, teardown", async (t) => {
  await using n = await sourceNode("10.77.0.0/24");
  const p1 = await n.pod();
  const p2 = await n.pod();
  const masterMac = (await links(n.node.name)).find((l) => l.ifname === "eth0")
    ?.address;
  const c = n.conf(staticIpam(n), {
    cniVersion: "1.1.0",
    dns: { nameservers: ["10.77.0.53"], search: ["svc.local"] },
  });
  const r1 = await n.run("ADD", c, n.env("pod1", p1));
  const r2 = await n.run("ADD", c, n.env("pod2", p2));

  await t.step("ADD returns the 1.1.0 result with both interfaces", () => {
    assert.equal(r1.code, 0, JSON.stringify(r1));
    assert.equal(r2.code, 0, JSON.stringify(r2));
    const [host, pod] = ifaces(r1.json);
    assert.match(host?.name ?? "", /^azv[0-9a-f]{11}$/);
    assert.equal(pod?.name, "eth0");
    assert.equal(pod?.sandbox, p1.path);
    assert.equal(pod?.mtu, 1500);
    assert.deepEqual(r1.json?.ips, [{
      address: "10.77.0.5/24",
      gateway: "10.77.0.1",
      interface: 1,
    }]);
    assert.deepEqual(r1.json?.routes, [{ dst: "0.0.0.0/0", gw: "10.77.0.1" }]);
    assert.deepEqual(r1.json?.dns, {
      nameservers: ["10.77.0.53"],
      search: ["svc.local"],
    });
  });

  await t.step(
    "the node's bridge carries the master, its MAC and its addresses and routes",
    async () => {
      const ls = await links(n.node.name);
      const br = ls.find((l) => l.ifname === "azure0");
      const eth0 = ls.find((l) => l.ifname === "eth0");
      assert.equal(br?.address, masterMac, "bridge MAC pinned to the master");
      assert.equal(eth0?.master, "azure0");
      assert.deepEqual(await v4addrs(n.node.name, "azure0"), ["10.77.0.4/24"]);
      assert.deepEqual(await v4addrs(n.node.name, "eth0"), []);
      const def = (await routes(n.node.name)).find((r) => r.dst === "default");
      assert.equal(def?.dev, "azure0");
      assert.equal(def?.gateway, "10.77.0.1");
      assert.equal(def?.protocol, "dhcp");
      assert.equal(def?.metric, 100);
      const hostVeths = ls.filter((l) => l.ifname.startsWith("azv"));
      assert.equal(hostVeths.length, 2);
      for (const v of hostVeths) assert.equal(v.master, "azure0");
      const hairpin = await n.node.exec("bridge", [
        "-d",
        "link",
        "show",
        "dev",
        "eth0",
      ]);
      assert.match(hairpin, /hairpin off/);
    },
  );

  await t.step(
    "pods have their address, default route and a permanent neighbour on the bridge",
    async () => {
      assert.deepEqual(await v4addrs(p1.name, "eth0"), ["10.77.0.5/24"]);
      assert.deepEqual(await v4addrs(p2.name, "eth0"), ["10.77.0.6/24"]);
      const def = (await routes(p1.name)).find((r) => r.dst === "default");
      assert.equal(def?.gateway, "10.77.0.1");
      const neigh = await neighbours(n.node.name, "azure0");
      const podMac = ifaces(r1.json)[1]?.mac;
      const e = neigh.find((x) => x.dst === "10.77.0.5");
      assert.equal(e?.lladdr, podMac);
      assert.ok(e?.state.includes("PERMANENT"));
    },
  );

  await t.step(
    "host and pod ebtables rules are in place, once each",
    async () => {
      const eb = await n.ebtables();
      const podMac = ifaces(r1.json)[1]?.mac ?? "";
      const want = [
        `-s Unicast -o eth0 -j snat --to-src ${masterMac} --snat-arp --snat-target ACCEPT`,
        `-p ARP --arp-op Request --arp-ip-dst 10.77.0.4 -j arpreply --arpreply-mac ${masterMac}`,
        "-p ARP -i eth0 --arp-op Reply -j dnat --to-dst ff:ff:ff:ff:ff:ff --dnat-target ACCEPT",
        `-p ARP --arp-op Request --arp-ip-dst 10.77.0.5 -j arpreply --arpreply-mac ${podMac}`,
        `-p IPv4 -i eth0 --ip-dst 10.77.0.5 -j dnat --to-dst ${podMac} --dnat-target ACCEPT`,
      ];
      for (const line of want) {
        assert.equal(eb.split("\n").filter((l) => l === line).length, 1, line);
      }
    },
  );

  await t.step(
    "the log names each command with its container id and duration",
    async () => {
      const text = await Deno.readTextFile(`${n.dir}/azure-vnet.log`);
      assert.match(text, /"ADD" "pod1" "eth0": ok in "[\d.]+" ms/);
      assert.match(text, /Creating network "azure"/);
    },
  );

  await t.step("pods reach each other, the node and the gateway", async () => {
    assert.ok(await p1.ping("10.77.0.6"), "pod1 -> pod2");
    assert.ok(await p2.ping("10.77.0.5"), "pod2 -> pod1");
    assert.ok(await p1.ping("10.77.0.4"), "pod1 -> node");
    assert.ok(await p1.ping("10.77.0.1"), "pod1 -> gateway");
    assert.ok(await n.node.ping("10.77.0.6"), "node -> pod2");
    assert.ok(await n.azure.ping("10.77.0.5"), "gateway -> pod1");
  });

  await t.step(
    "CHECK passes, and names what is missing after drift",
    async () => {
      const withPrev = { ...c, prevResult: r1.json };
      const ok = await n.run("CHECK", withPrev, n.env("pod1", p1));
      assert.equal(ok.code, 0, JSON.stringify(ok.json));
      assert.equal(ok.json, undefined);
      await ip(["route", "del", "default"], p1.name);
      const bad = await n.run("CHECK", withPrev, n.env("pod1", p1));
      assert.equal(bad.json?.code, 106);
      assert.match(
        String(bad.json?.msg),
        /route "0\.0\.0\.0\/0" via 10\.77\.0\.1 missing/,
      );
      await ip(["route", "add", "default", "via", "10.77.0.1"], p1.name);
    },
  );

  await t.step(
    "a repeated ADD returns the same result and keeps the IP",
    async () => {
      const before = await n.ipamState();
      const again = await n.run("ADD", c, n.env("pod1", p1));
      assert.equal(again.code, 0);
      assert.deepEqual(again.json, r1.json);
      assert.equal(await n.ipamState(), before);
      assert.ok(await p1.ping("10.77.0.6"));
    },
  );

  await t.step(
    "DEL removes veth, rules and neighbour and releases the IP; DEL again succeeds",
    async () => {
      const hostVeth = ifaces(r1.json)[0]?.name ?? "";
      const d1 = await n.run(
        "DEL",
        { ...c, prevResult: r1.json },
        n.env("pod1", p1),
      );
      assert.equal(d1.code, 0, JSON.stringify(d1.json));
      const d2 = await n.run("DEL", c, {
        ...n.env("pod1", p1),
        CNI_NETNS: "",
      });
      assert.equal(d2.code, 0, JSON.stringify(d2.json));
      assert.ok(!(await links(n.node.name)).some((l) => l.ifname === hostVeth));
      assert.deepEqual(
        await links(p1.name).then((l) => l.map((x) => x.ifname)),
        ["lo"],
      );
      assert.doesNotMatch(await n.ebtables(), /10\.77\.0\.5 /);
      const neigh = await neighbours(n.node.name, "azure0");
      assert.ok(!neigh.some((x) => x.dst === "10.77.0.5"));
      const st = await n.state();
      assert.deepEqual(Object.keys(st.endpoints), ["pod2/eth0"]);
      assert.match(await n.ipamState(), /pod2/);
      assert.doesNotMatch(await n.ipamState(), /pod1/);
      assert.ok(await p2.ping("10.77.0.1"), "pod2 unaffected");
      const gone = await n.run(
        "CHECK",
        { ...c, prevResult: r1.json },
        n.env("pod1", p1),
      );
      assert.equal(gone.json?.code, 106);
    },
  );

  await t.step(
    "teardown keeps a busy network, then --force restores the node",
    async () => {
      const busy = await n.stateTool(["teardown"]);
      assert.equal(busy.code, 1);
      assert.match(busy.stdout + busy.stderr, /pod2\/eth0/);
      const done = await n.stateTool(["teardown", "--force"]);
      assert.equal(done.code, 0, done.stdout + done.stderr);
      const ls = await links(n.node.name);
      assert.ok(
        !ls.some((l) => l.ifname === "azure0" || l.ifname.startsWith("azv")),
      );
      assert.equal(ls.find((l) => l.ifname === "eth0")?.master, undefined);
      assert.deepEqual(await v4addrs(n.node.name, "eth0"), ["10.77.0.4/24"]);
      const def = (await routes(n.node.name)).find((r) => r.dst === "default");
      assert.deepEqual(
        [def?.dev, def?.gateway, def?.protocol, def?.metric],
        ["eth0", "10.77.0.1", "dhcp", 100],
      );
      const eb = await n.ebtables();
      assert.doesNotMatch(eb, /-j (snat|dnat|arpreply)/);
      assert.ok(
        await n.node.ping("10.77.0.1"),
        "node -> gateway after teardown",
      );
      assert.deepEqual((await n.state()).networks, {});
    },
  );
});

const VERSIONS = [
  "0.1.0",
  "0.2.0",
  "0.3.0",
  "0.3.1",
  "0.4.0",
  "1.0.0",
  "1.1.0",
];

Deno.test("azure-vnet with host-local by exec: every spec version's result through ADD, CHECK, DEL, DEL", async (t) => {
  await using n = await sourceNode("10.78.0.0/24");
  const dataDir = `${n.dir}/host-local`;
  const pods: Netns[] = [];
  for (let i = 0; i < VERSIONS.length; i++) pods.push(await n.pod());
  for (const [i, v] of VERSIONS.entries()) {
    await t.step(`cniVersion ${v}`, async () => {
      const pod = pods[i];
      assert.ok(pod !== undefined);
      const id = `hl-${v}`;
      // Debian's host-local (1.1.1) speaks up to 1.0.0: 1.1.0 runs with
      // azure-vnet-ipam (static) in process.
      const viaExec = v !== "1.1.0";
      const c = n.conf(viaExec ? hostLocal(n, dataDir) : staticIpam(n), {
        cniVersion: v,
      });
      const add = await n.run("ADD", c, n.env(id, pod));
      assert.equal(add.code, 0, JSON.stringify(add));
      assert.equal(add.json?.cniVersion, v);
      const legacy = v === "0.1.0" || v === "0.2.0";
      let address: string;
      if (legacy) {
        const ip4 = add.json?.ip4 as {
          ip: string;
          gateway: string;
          routes: unknown[];
        };
        assert.equal(ip4.gateway, "10.78.0.1");
        assert.deepEqual(ip4.routes, [{ dst: "0.0.0.0/0", gw: "10.78.0.1" }]);
        assert.equal(add.json?.interfaces, undefined);
        address = ip4.ip;
      } else {
        const ips = add.json?.ips as {
          address: string;
          version?: string;
          interface: number;
        }[];
        assert.equal(ips.length, 1);
        assert.equal(ips[0]?.interface, 1);
        assert.equal(ips[0]?.version, v.startsWith("0.") ? "4" : undefined);
        const [host, podIf] = ifaces(add.json);
        assert.match(host?.name ?? "", /^azv/);
        assert.equal(podIf?.sandbox, pod.path);
        assert.equal(podIf?.mtu, v === "1.1.0" ? 1500 : undefined);
        address = ips[0]?.address ?? "";
      }
      assert.match(
        address,
        viaExec ? /^10\.78\.0\.(1\d|20)\/24$/ : /^10\.78\.0\.5\/24$/,
      );
      assert.deepEqual(await v4addrs(pod.name, "eth0"), [address]);
      assert.ok(await pod.ping("10.78.0.1"), "pod -> gateway");
      assert.ok(await pod.ping("10.78.0.4"), "pod -> node");
      const ip = address.split("/")[0] ?? "";
      const reserved = viaExec
        ? async () =>
          await Deno.stat(`${dataDir}/azure/${ip}`).then(
            () => true,
            () => false,
          )
        : async () => (await n.ipamState()).includes(id);
      assert.ok(await reserved(), "host-local holds the address");
      if (!legacy && v !== "0.3.0" && v !== "0.3.1") {
        const chk = await n.run(
          "CHECK",
          { ...c, prevResult: add.json },
          n.env(id, pod),
        );
        assert.equal(chk.code, 0, JSON.stringify(chk.json));
      }
      const d1 = await n.run(
        "DEL",
        { ...c, prevResult: add.json },
        n.env(id, pod),
      );
      assert.equal(d1.code, 0, JSON.stringify(d1.json));
      const d2 = await n.run("DEL", c, n.env(id, pod));
      assert.equal(d2.code, 0, JSON.stringify(d2.json));
      assert.ok(!(await reserved()), "host-local released the address");
      assert.deepEqual((await links(pod.name)).map((l) => l.ifname), ["lo"]);
    });
  }
});

Deno.test("azure-vnet ADD fails with 105 when the ifname exists in the pod, leaking nothing", async () => {
  await using n = await sourceNode("10.79.0.0/24");
  const dataDir = `${n.dir}/host-local`;
  const ok = await n.pod();
  const taken = await n.pod();
  const c = n.conf(hostLocal(n, dataDir), { cniVersion: "1.0.0" });
  assert.equal((await n.run("ADD", c, n.env("first", ok))).code, 0);
  const before = (await links(n.node.name)).map((l) => l.ifname).sort();
  await ip(
    ["link", "add", "eth0", "type", "veth", "peer", "name", "x0"],
    taken.name,
  );
  const r = await n.run("ADD", c, n.env("second", taken));
  assert.equal(r.code, 1);
  assert.equal(r.json?.code, 105);
  assert.match(String(r.json?.msg), /"eth0" already exists/);
  assert.deepEqual(
    (await links(n.node.name)).map((l) => l.ifname).sort(),
    before,
  );
  const files = [];
  for await (const e of Deno.readDir(`${dataDir}/azure`)) files.push(e.name);
  assert.deepEqual(files.filter((f) => f.startsWith("10.")), ["10.79.0.10"]);
  assert.deepEqual(Object.keys((await n.state()).endpoints), ["first/eth0"]);

  // DEL after the pod's netns is gone still cleans up and releases the IP.
  const okPath = ok.path;
  await ok[Symbol.asyncDispose]();
  const del = await n.run("DEL", c, {
    ...n.env("first", ok),
    CNI_NETNS: okPath,
  });
  assert.equal(del.code, 0, JSON.stringify(del.json));
  assert.ok(
    !(await links(n.node.name)).some((l) => l.ifname.startsWith("azv")),
  );
  const left = [];
  for await (const e of Deno.readDir(`${dataDir}/azure`)) left.push(e.name);
  assert.deepEqual(left.filter((f) => f.startsWith("10.")), []);
  assert.deepEqual((await n.state()).endpoints, {});
});

Deno.test("azure-vnet first ADD rolls the host back when network creation fails midway", async (t) => {
  await using n = await sourceNode("10.80.0.0/24");
  const pod = await n.pod();
  const ipam = staticIpam(n);
  await t.step(
    "unknown master: 108, nothing changed, IP released",
    async () => {
      const r = await n.run(
        "ADD",
        n.conf(ipam, { cniVersion: "1.0.0", master: "nope0" }),
        n.env("p", pod),
      );
      assert.equal(r.json?.code, 108);
      assert.match(String(r.json?.msg), /"nope0"/);
      assert.doesNotMatch(await n.ipamState(), /"p"/);
    },
  );
  await t.step(
    "bridge name taken by a non-bridge: the master keeps its addresses and routes",
    async () => {
      await ip(
        ["link", "add", "azure0", "type", "veth", "peer", "name", "azx"],
        n.node.name,
      );
      const r = await n.run(
        "ADD",
        n.conf(ipam, { cniVersion: "1.0.0" }),
        n.env("p", pod),
      );
      assert.equal(r.code, 1);
      assert.equal(r.json?.code, 103, JSON.stringify(r.json));
      assert.deepEqual(await v4addrs(n.node.name, "eth0"), ["10.80.0.4/24"]);
      const def = (await routes(n.node.name)).find((x) => x.dst === "default");
      assert.deepEqual([def?.dev, def?.protocol, def?.metric], [
        "eth0",
        "dhcp",
        100,
      ]);
      assert.equal(
        (await links(n.node.name)).find((l) => l.ifname === "eth0")?.master,
        undefined,
      );
      assert.doesNotMatch(await n.ebtables(), /-j (snat|dnat|arpreply)/);
      assert.deepEqual((await links(pod.name)).map((l) => l.ifname), ["lo"]);
      assert.doesNotMatch(await n.ipamState(), /"p"/);
      assert.ok(await n.node.ping("10.80.0.1"));
    },
  );
});

Deno.test("azure-vnet GC removes attachments not in the valid list; STATUS reports 50 without the bridge", async (t) => {
  await using n = await sourceNode("10.81.0.0/24");
  const p1 = await n.pod();
  const p2 = await n.pod();
  const c = n.conf(staticIpam(n), { cniVersion: "1.1.0" });
  const r1 = await n.run("ADD", c, n.env("gc1", p1));
  const r2 = await n.run("ADD", c, n.env("gc2", p2));
  assert.equal(r1.code + r2.code, 0);
  await t.step("STATUS is ready", async () => {
    const s = await n.run("STATUS", c, {});
    assert.equal(s.code, 0, JSON.stringify(s.json));
  });
  await t.step(
    "GC keeps gc2 and removes gc1 with its rules and IP, and rules in another form for an address of no record",
    async () => {
      // Written by someone else: the ARP reply's target and the DNAT's
      // target differ from ours, so only a deletion as listed removes them.
      for (
        const rule of [
          "-p ARP --arp-op Request --arp-ip-dst 10.81.0.50 -j arpreply --arpreply-mac 02:00:00:00:00:50 --arpreply-target ACCEPT",
          "-p IPv4 -i eth0 --ip-dst 10.81.0.50 -j dnat --to-dst 02:00:00:00:00:50 --dnat-target CONTINUE",
        ]
      ) {
        await n.node.exec("ebtables", [
          "-t",
          "nat",
          "-A",
          "PREROUTING",
          ...rule.split(" "),
        ]);
      }
      assert.match(await n.ebtables(), /10\.81\.0\.50 .*ACCEPT/);
      assert.match(await n.ebtables(), /10\.81\.0\.50 .*CONTINUE/);
      const gc = await n.run("GC", {
        ...c,
        "cni.dev/valid-attachments": [{ containerID: "gc2", ifname: "eth0" }],
      }, {});
      assert.equal(gc.code, 0, JSON.stringify(gc.json));
      assert.deepEqual(Object.keys((await n.state()).endpoints), ["gc2/eth0"]);
      const hostVeth = ifaces(r1.json)[0]?.name ?? "";
      assert.ok(!(await links(n.node.name)).some((l) => l.ifname === hostVeth));
      assert.doesNotMatch(await n.ebtables(), /10\.81\.0\.5 /);
      assert.doesNotMatch(await n.ebtables(), /10\.81\.0\.50\b/);
      assert.doesNotMatch(await n.ipamState(), /gc1/);
      assert.match(await n.ipamState(), /gc2/);
      assert.ok(await p2.ping("10.81.0.1"));
    },
  );
  await t.step("STATUS answers 50 when the bridge is gone", async () => {
    await ip(["link", "set", "eth0", "nomaster"], n.node.name);
    const s = await n.run("STATUS", c, {});
    assert.equal(s.json?.code, 50);
    assert.match(String(s.json?.msg), /does not hold master "eth0"/);
  });
});

/**
 * A `CNI_PATH` directory (removed by the caller) holding `azure-vnet-ipam`:
 * a script that runs the IPAM plugin from source.
 */
async function ipamBinDir(): Promise<string> {
  const bin = await Deno.makeTempDir({ prefix: "cnitest-bin-" });
  const ipamMain = new URL(
    "../../ipam/plugins/azure-vnet-ipam/main.ts",
    import.meta.url,
  ).pathname;
  await Deno.writeTextFile(
    `${bin}/azure-vnet-ipam`,
    `#!/bin/sh\nexec "${Deno.execPath()}" run -A "${ipamMain}" "$@"\n`,
    { mode: 0o755 },
  );
  return bin;
}

Deno.test("azure-vnet gives the same result through the in-process and exec routes of azure-vnet-ipam", async () => {
  const bin = await ipamBinDir();
  try {
    const results = [];
    const states = [];
    for (const ipamExec of [false, true]) {
      await using n = await sourceNode("10.82.0.0/24");
      const pod = await n.pod();
      const c = n.conf(staticIpam(n), { cniVersion: "1.0.0", ipamExec });
      const r = await n.run("ADD", c, {
        ...n.env("same", pod),
        CNI_PATH: bin,
      });
      assert.equal(r.code, 0, JSON.stringify(r));
      const [host, podIf] = ifaces(r.json);
      results.push({
        ...r.json,
        interfaces: [{ ...host, mac: "" }, { ...podIf, mac: "", sandbox: "" }],
      });
      const st = await n.state();
      states.push(
        Object.values(st.endpoints).map((e) => [e.addresses, e.ipamRoute]),
      );
      const d = await n.run("DEL", c, {
        ...n.env("same", pod),
        CNI_PATH: bin,
      });
      assert.equal(d.code, 0, JSON.stringify(d));
    }
    assert.deepEqual(results[0], results[1]);
    assert.deepEqual(states, [[[["10.82.0.5/24"], "in-process"]], [[[
      "10.82.0.5/24",
    ], "exec"]]]);
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
});

Deno.test("azure-vnet concurrent first ADDs create the network once", async () => {
  await using n = await sourceNode("10.83.0.0/24");
  const pods = [await n.pod(), await n.pod(), await n.pod()];
  const c = n.conf(staticIpam(n), { cniVersion: "1.0.0" });
  const results = await Promise.all(
    pods.map((p, i) => n.run("ADD", c, n.env(`cc${i}`, p))),
  );
  for (const r of results) assert.equal(r.code, 0, JSON.stringify(r));
  const addrs = results.map((r) =>
    (r.json?.ips as { address: string }[])[0]?.address
  ).sort();
  assert.deepEqual(addrs, ["10.83.0.5/24", "10.83.0.6/24", "10.83.0.7/24"]);
  const st = await n.state();
  assert.deepEqual(Object.keys(st.networks), ["azure"]);
  const azure = st.networks.azure;
  assert.ok(azure?.mode === "bridge");
  assert.deepEqual(azure.savedAddrs, ["10.83.0.4/24"]);
  const eb = (await n.ebtables()).split("\n");
  assert.equal(eb.filter((l) => l.includes("--snat-arp")).length, 1);
  assert.equal(eb.filter((l) => l.includes("--arp-op Reply")).length, 1);
  assert.equal(eb.filter((l) => l.includes("-j arpreply")).length, 4);
  assert.ok(await pods[0]?.ping("10.83.0.7"));
  assert.ok(await pods[2]?.ping("10.83.0.1"));
});

/** The node's default route, as `ip` shows it. */
async function nodeDefault(n: AzureNode): Promise<IpRoute | undefined> {
  return (await routes(n.node.name)).find((r) => r.dst === "default");
}

Deno.test("azure-vnet refuses a CNI_NETNS that is the node's own, missing, or no netns, with code 4 and no change (#12)", async (t) => {
  await using n = await sourceNode("10.83.0.0/24");
  const c = n.conf(staticIpam(n), { cniVersion: "1.1.0" });
  const fifo = `${n.dir}/fifo`;
  await new Deno.Command("mkfifo", { args: [fifo] }).output();
  const cases: [string, string, RegExp][] = [
    ["/proc/self/ns/net", "/proc/self/ns/net", /node's own network namespace/],
    ["the node netns by its ip-netns path", n.node.path, /node's own/],
    ["a missing path", `${n.dir}/nope`, /does not exist/],
    ["a regular file", `${n.dir}/azure-vnet.log`, /not a network namespace/],
    ["a FIFO (no hang)", fifo, /not a network namespace/],
  ];
  for (const [what, netns, msg] of cases) {
    await t.step(what, async () => {
      await Deno.writeTextFile(`${n.dir}/azure-vnet.log`, "", { append: true });
      for (const cmd of ["ADD", "CHECK"]) {
        const t0 = performance.now();
        const r = await n.run(cmd, c, {
          CNI_CONTAINERID: "own",
          CNI_NETNS: netns,
          CNI_IFNAME: "eth1",
        });
        assert.ok(performance.now() - t0 < 10_000, `${cmd} returned promptly`);
        assert.equal(r.code, 1);
        assert.equal(r.json?.code, 4, JSON.stringify(r.json));
        assert.match(String(r.json?.msg), /Invalid CNI_NETNS/);
        assert.match(String(r.json?.msg), msg);
      }
      const ls = await links(n.node.name);
      assert.ok(!ls.some((l) => l.ifname === "eth1" || l.ifname === "azure0"));
      const def = await nodeDefault(n);
      assert.deepEqual([def?.dev, def?.gateway], ["eth0", n.addr(1)]);
      assert.deepEqual(await v4addrs(n.node.name, "eth0"), [`${n.addr(4)}/24`]);
      // The DEL that follows is harmless too.
      const d = await n.run("DEL", c, {
        CNI_CONTAINERID: "own",
        CNI_NETNS: netns,
        CNI_IFNAME: "eth1",
      });
      assert.equal(d.code, 0, JSON.stringify(d.json));
      assert.deepEqual([(await nodeDefault(n))?.dev], ["eth0"]);
    });
  }
});

Deno.test("azure-vnet DEL removes what an interrupted ADD left, without a record or prevResult (#12)", async () => {
  await using n = await sourceNode("10.84.0.0/24");
  const p1 = await n.pod();
  const p2 = await n.pod();
  const c = n.conf(staticIpam(n), { cniVersion: "1.1.0" });
  assert.equal((await n.run("ADD", c, n.env("keep", p2))).code, 0);
  const r = await n.run("ADD", c, n.env("cut", p1));
  assert.equal(r.code, 0, JSON.stringify(r.json));
  const ip1 = n.addr(6);
  assert.match(
    await n.ebtables(),
    new RegExp(`${ip1.replaceAll(".", "\\.")} `),
  );
  // As if the ADD was killed just before writing its record.
  const st = await n.state();
  delete st.endpoints["cut/eth0"];
  await Deno.writeTextFile(`${n.dir}/azure-vnet.json`, JSON.stringify(st));
  // Killed while writing it: the 0-byte temp file of the write stays.
  const tmp = `${n.dir}/azure-vnet.json.tmp-99999-0badf00d`;
  await Deno.writeTextFile(tmp, "");
  const d = await n.run("DEL", c, n.env("cut", p1));
  assert.equal(d.code, 0, JSON.stringify(d.json));
  await assert.rejects(Deno.stat(tmp), Deno.errors.NotFound, "temp swept");
  const hostVeth = ifaces(r.json)[0]?.name ?? "";
  assert.ok(!(await links(n.node.name)).some((l) => l.ifname === hostVeth));
  assert.doesNotMatch(
    await n.ebtables(),
    new RegExp(`${ip1.replaceAll(".", "\\.")} `),
  );
  const neigh = await neighbours(n.node.name, "azure0");
  assert.ok(!neigh.some((x) => x.dst === ip1), "neighbour removed");
  assert.doesNotMatch(await n.ipamState(), /"cut"/);
  assert.ok(await p2.ping(n.addr(1)), "the other pod is untouched");
  assert.match(
    await n.ebtables(),
    new RegExp(`${n.addr(5).replaceAll(".", "\\.")} `),
  );
});

Deno.test("azure-vnet repeated ADD with another CNI_NETNS re-attaches there (#12)", async () => {
  await using n = await sourceNode("10.85.0.0/24");
  const p1 = await n.pod();
  const p7 = await n.pod();
  const c = n.conf(staticIpam(n), { cniVersion: "1.1.0" });
  const r1 = await n.run("ADD", c, n.env("c1", p1));
  assert.equal(r1.code, 0, JSON.stringify(r1.json));
  const r7 = await n.run("ADD", c, n.env("c1", p7));
  assert.equal(r7.code, 0, JSON.stringify(r7.json));
  assert.equal(ifaces(r7.json)[1]?.sandbox, p7.path);
  assert.deepEqual(r7.json?.ips, r1.json?.ips, "the same address");
  assert.deepEqual(await v4addrs(p7.name, "eth0"), [`${n.addr(5)}/24`]);
  assert.deepEqual((await links(p1.name)).map((l) => l.ifname), ["lo"]);
  assert.ok(await p7.ping(n.addr(1)), "p7 -> gateway");
  const st = await n.state();
  assert.equal(st.endpoints["c1/eth0"]?.netns, p7.path);
  assert.equal(
    (await links(n.node.name)).filter((l) => l.ifname.startsWith("azv"))
      .length,
    1,
  );
  const ok = await n.run(
    "CHECK",
    { ...c, prevResult: r7.json },
    n.env("c1", p7),
  );
  assert.equal(ok.code, 0, JSON.stringify(ok.json));
  // The same netns again: the recorded result, nothing changed.
  const again = await n.run("ADD", c, n.env("c1", p7));
  assert.deepEqual(again.json, r7.json);
  const d = await n.run("DEL", { ...c, prevResult: r7.json }, n.env("c1", p7));
  assert.equal(d.code, 0, JSON.stringify(d.json));
  assert.deepEqual((await links(p7.name)).map((l) => l.ifname), ["lo"]);
  assert.doesNotMatch(await n.ebtables(), /10\.85\.0\.5 /);
});

Deno.test("azure-vnet second interface of a pod keeps the first one's default route (#12)", async () => {
  await using n = await sourceNode("10.86.0.0/24");
  const pod = await n.pod();
  const c = n.conf(staticIpam(n), { cniVersion: "1.1.0" });
  const e0 = await n.run("ADD", c, n.env("m1", pod));
  assert.equal(e0.code, 0, JSON.stringify(e0.json));
  const e1 = await n.run("ADD", c, {
    ...n.env("m1", pod),
    CNI_IFNAME: "eth1",
  });
  assert.equal(e1.code, 0, JSON.stringify(e1.json));
  assert.deepEqual(e1.json?.routes ?? [], [], "no default route in the result");
  assert.deepEqual(await v4addrs(pod.name, "eth1"), [`${n.addr(6)}/24`]);
  const defs = (await routes(pod.name)).filter((r) => r.dst === "default");
  assert.deepEqual(defs.map((r) => r.dev), ["eth0"]);
  const check1 = await n.run("CHECK", { ...c, prevResult: e1.json }, {
    ...n.env("m1", pod),
    CNI_IFNAME: "eth1",
  });
  assert.equal(check1.code, 0, JSON.stringify(check1.json));
  const d1 = await n.run("DEL", { ...c, prevResult: e1.json }, {
    ...n.env("m1", pod),
    CNI_IFNAME: "eth1",
  });
  assert.equal(d1.code, 0, JSON.stringify(d1.json));
  const after = (await routes(pod.name)).filter((r) => r.dst === "default");
  assert.deepEqual(after.map((r) => r.dev), ["eth0"]);
  const check0 = await n.run(
    "CHECK",
    { ...c, prevResult: e0.json },
    n.env("m1", pod),
  );
  assert.equal(check0.code, 0, JSON.stringify(check0.json));
  assert.ok(await pod.ping(n.addr(1)));
});

Deno.test("azure-vnet DEL whose config names another network touches nothing of the first (#12)", async () => {
  await using n = await sourceNode("10.87.0.0/24");
  const pod = await n.pod();
  const c = n.conf(staticIpam(n), { cniVersion: "1.1.0" });
  const r = await n.run("ADD", c, n.env("x1", pod));
  assert.equal(r.code, 0, JSON.stringify(r.json));
  const ebBefore = await n.ebtables();
  const ipamBefore = await n.ipamState();
  const other = { ...c, name: "other" };
  const d = await n.run("DEL", other, n.env("x1", pod));
  assert.equal(d.code, 0, JSON.stringify(d.json));
  assert.equal(await n.ebtables(), ebBefore, "rules unchanged");
  assert.equal(await n.ipamState(), ipamBefore, "the address stays held");
  const neigh = await neighbours(n.node.name, "azure0");
  assert.ok(neigh.some((x) => x.dst === n.addr(5)), "neighbour kept");
  assert.deepEqual(Object.keys((await n.state()).endpoints), ["x1/eth0"]);
  assert.ok(await pod.ping(n.addr(1)), "the pod still works");
  // ADD under the other network name is refused, not a second record.
  const add = await n.run("ADD", other, n.env("x1", pod));
  assert.equal(add.json?.code, 105, JSON.stringify(add.json));
  assert.match(String(add.json?.msg), /attached by network "azure"/);
  const own = await n.run("DEL", c, n.env("x1", pod));
  assert.equal(own.code, 0);
  assert.doesNotMatch(await n.ebtables(), /10\.87\.0\.5 /);
});

Deno.test("azure-vnet GC without cni.dev/valid-attachments is refused (7) and removes nothing (#12)", async () => {
  await using n = await sourceNode("10.88.0.0/24");
  const pod = await n.pod();
  const c = n.conf(staticIpam(n), { cniVersion: "1.1.0" });
  assert.equal((await n.run("ADD", c, n.env("g1", pod))).code, 0);
  const gc = await n.run("GC", c, {});
  assert.equal(gc.json?.code, 7, JSON.stringify(gc.json));
  assert.match(String(gc.json?.msg), /cni\.dev\/valid-attachments/);
  assert.deepEqual(Object.keys((await n.state()).endpoints), ["g1/eth0"]);
  assert.match(await n.ipamState(), /"g1"/);
  assert.ok(await pod.ping(n.addr(1)));
});

Deno.test("azure-vnet repeated ADD with an invalid ipam body fails with 7, not 0 from the record (#12)", async () => {
  await using n = await sourceNode("10.89.0.0/24");
  const pod = await n.pod();
  const c = n.conf(staticIpam(n), { cniVersion: "1.1.0" });
  const r = await n.run("ADD", c, n.env("v1", pod));
  assert.equal(r.code, 0, JSON.stringify(r.json));
  const stateBefore = JSON.stringify(await n.state());
  const ipamBefore = await n.ipamState();
  const bad = {
    ...c,
    ipam: {
      ...staticIpam(n),
      environment: "azure",
      queryUrl: "file:///etc/passwd",
      addresses: "nope",
    },
  };
  const again = await n.run("ADD", bad, n.env("v1", pod));
  assert.equal(again.code, 1, JSON.stringify(again.json));
  assert.equal(again.json?.code, 7, JSON.stringify(again.json));
  const text = `${again.json?.msg} ${again.json?.details}`;
  assert.match(text, /queryUrl/);
  assert.match(text, /addresses/);
  assert.equal(JSON.stringify(await n.state()), stateBefore);
  assert.equal(await n.ipamState(), ipamBefore);
  assert.deepEqual(await v4addrs(pod.name, "eth0"), [`${n.addr(5)}/24`]);
  assert.ok(await pod.ping(n.addr(1)), "the pod still works");
  const d = await n.run("DEL", c, n.env("v1", pod));
  assert.equal(d.code, 0, JSON.stringify(d.json));
});

Deno.test("azure-vnet DEL retried after its address went to a new owner leaves the new owner's neighbour and rules", async () => {
  await using n = await sourceNode("10.90.0.0/24");
  const pod = await n.pod();
  const c = n.conf(staticIpam(n), { cniVersion: "1.1.0" });
  const r = await n.run("ADD", c, n.env("old", pod));
  assert.equal(r.code, 0, JSON.stringify(r.json));
  const ip = n.addr(5);
  const [hostEnd, podEnd] = ifaces(r.json);
  const oldMac = podEnd?.mac ?? "";
  // As after a first DEL that released the address and then failed (its
  // veth's deletion): the record stays, and the address's new owner has
  // set its neighbour and rules for the address with its own MAC.
  const newMac = "02:42:0a:5a:00:05";
  assert.notEqual(newMac, oldMac);
  await n.node.exec("ip", [
    "neigh",
    "replace",
    ip,
    "lladdr",
    newMac,
    "nud",
    "permanent",
    "dev",
    "azure0",
  ]);
  const newRules = [
    `-p ARP --arp-op Request --arp-ip-dst ${ip} -j arpreply --arpreply-mac ${newMac}`,
    `-p IPv4 -i eth0 --ip-dst ${ip} -j dnat --to-dst ${newMac} --dnat-target ACCEPT`,
  ];
  for (const rule of newRules) {
    await n.node.exec("ebtables", [
      "-t",
      "nat",
      "-A",
      "PREROUTING",
      ...rule.split(" "),
    ]);
  }
  const d = await n.run("DEL", c, n.env("old", pod));
  assert.equal(d.code, 0, JSON.stringify(d.json));
  assert.deepEqual(Object.keys((await n.state()).endpoints), []);
  assert.ok(
    !(await links(n.node.name)).some((l) => l.ifname === hostEnd?.name),
    "the old veth is gone",
  );
  const neigh = (await neighbours(n.node.name, "azure0")).find((x) =>
    x.dst === ip
  );
  assert.equal(neigh?.lladdr, newMac, "the new owner's neighbour stays");
  assert.ok(neigh?.state.includes("PERMANENT"));
  const eb = (await n.ebtables()).split("\n");
  for (const rule of newRules) {
    assert.equal(eb.filter((l) => l === rule).length, 1, rule);
  }
  assert.ok(!eb.some((l) => l.includes(oldMac)), "the old pod's rules went");
});

/** Waits until `ready()` holds, polling every 20 ms for at most 10 s. */
async function until(
  what: string,
  ready: () => Promise<boolean>,
): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await ready()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`Timed out waiting until ${what}`);
}

/** The ebtables lines that name `ip` (`--ip-dst`, `--arp-ip-dst`). */
async function rulesOf(n: AzureNode, ip: string): Promise<string[]> {
  return (await n.ebtables()).split("\n").filter((l) =>
    l.includes(`-dst ${ip} `)
  );
}

Deno.test("azure-vnet DEL without a record leaves the rules and neighbour of the address's new owner while its ADD waits to record", async () => {
  await using n = await sourceNode("10.110.0.0/24");
  const p3 = await n.pod();
  const p5 = await n.pod();
  const c = n.conf(staticIpam(n), { cniVersion: "1.1.0" });
  const r3 = await n.run("ADD", c, n.env("c3", p3));
  assert.equal(r3.code, 0, JSON.stringify(r3.json));
  const ip = n.addr(5);
  const oldMac = ifaces(r3.json)[1]?.mac ?? "";
  assert.equal((await n.run("DEL", c, n.env("c3", p3))).code, 0);
  // The state lock is held, as by a slow writer: c5's ADD reserves the
  // address, makes its neighbour and rules, then waits to record them.
  const lock = await Deno.open(`${n.statePath}.lock`, {
    read: true,
    write: true,
    create: true,
  });
  let held = true;
  try {
    const exclusive = true;
    await lock.lock(exclusive);
    const add5 = n.spawn("ADD", c, n.env("c5", p5));
    await until("c5's neighbour and rules exist", async () => {
      const neigh = (await neighbours(n.node.name, "azure0")).find((x) =>
        x.dst === ip
      );
      return neigh?.lladdr !== undefined && neigh.lladdr !== oldMac &&
        (await rulesOf(n, ip)).length === 2;
    });
    const newMac = (await neighbours(n.node.name, "azure0")).find((x) =>
      x.dst === ip
    )?.lladdr ?? "";
    const rules5 = await rulesOf(n, ip);
    assert.ok(!(await n.state()).endpoints["c5/eth0"], "c5 not recorded yet");
    // The runtime's DEL of the old sandbox, with its cached prevResult and
    // no netns any more (after a reboot, say).
    const del3 = n.run(
      "DEL",
      { ...c, prevResult: r3.json },
      n.env("c3", undefined),
    );
    // It may wait for the lock (the old code did); give it 2 s, then let
    // everything go on.
    await Promise.race([del3, new Promise((r) => setTimeout(r, 2000))]);
    lock.unlockSync();
    held = false;
    const d = await del3;
    assert.equal(d.code, 0, JSON.stringify(d.json));
    const a5 = await add5.done;
    assert.equal(a5.code, 0, a5.stdout);
    const r5 = JSON.parse(a5.stdout);
    assert.equal(ifaces(r5)[1]?.mac, newMac);
    const neigh = (await neighbours(n.node.name, "azure0")).find((x) =>
      x.dst === ip
    );
    assert.equal(neigh?.lladdr, newMac, "c5's neighbour stays");
    assert.deepEqual(await rulesOf(n, ip), rules5, "c5's rules stay");
    assert.ok(await n.azure.ping(ip), "the fabric reaches c5");
    const check = await n.run(
      "CHECK",
      { ...c, prevResult: r5 },
      n.env("c5", p5),
    );
    assert.equal(check.code, 0, JSON.stringify(check.json));
    await assertStateMatchesKernel(n);
  } finally {
    if (held) lock.unlockSync();
    lock.close();
  }
});

Deno.test("azure-vnet GC (and azure-vnet-ipam's, in process and exec'd) takes a null cni.dev/valid-attachments as none valid", async (t) => {
  const bin = await ipamBinDir();
  try {
    for (const ipamExec of [false, true]) {
      await t.step(ipamExec ? "exec'd IPAM" : "in-process IPAM", async () => {
        await using n = await sourceNode("10.111.0.0/24");
        const pods = [await n.pod(), await n.pod()];
        const c = n.conf(staticIpam(n), { cniVersion: "1.1.0", ipamExec });
        for (const [i, pod] of pods.entries()) {
          const r = await n.run("ADD", c, {
            ...n.env(`n${i}`, pod),
            CNI_PATH: bin,
          });
          assert.equal(r.code, 0, JSON.stringify(r.json));
        }
        // What libcni's GCNetworkList injects for a nil Go slice.
        const gc = await n.run("GC", {
          ...c,
          "cni.dev/valid-attachments": null,
          "cni.dev/attachments": null,
        }, { CNI_PATH: bin });
        assert.equal(gc.code, 0, JSON.stringify(gc.json));
        assert.deepEqual(Object.keys((await n.state()).endpoints), []);
        assert.doesNotMatch(await n.ipamState(), /"n[01]"/);
        assert.ok(
          !(await links(n.node.name)).some((l) => l.ifname.startsWith("azv")),
        );
        assert.doesNotMatch(
          await n.ebtables(),
          /-p IPv4 .*-j dnat/,
          "no pod rule",
        );
        await assertStateMatchesKernel(n);
      });
    }
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
});

Deno.test("azure-vnet ADD and STATUS put back a host rule removed while the bridge stayed", async () => {
  await using n = await sourceNode("10.112.0.0/24");
  const p1 = await n.pod();
  const p2 = await n.pod();
  const c = n.conf(staticIpam(n), { cniVersion: "1.1.0" });
  const r1 = await n.run("ADD", c, n.env("h1", p1));
  assert.equal(r1.code, 0, JSON.stringify(r1.json));
  async function postrouting(): Promise<string[]> {
    return (await n.node.exec("ebtables", ["-t", "nat", "-L", "POSTROUTING"]))
      .split("\n").filter((l) => l.startsWith("-"));
  }
  const before = await postrouting();
  assert.equal(before.length, 1);
  assert.match(before[0] ?? "", /-j snat --to-src .* --snat-arp/);
  async function deleteSnat(): Promise<void> {
    const rule = (before[0] ?? "").split(" ");
    await n.node.exec("ebtables", ["-t", "nat", "-D", "POSTROUTING", ...rule]);
    assert.deepEqual(await postrouting(), []);
  }
  await deleteSnat();
  const withPrev = { ...c, prevResult: r1.json };
  const bad = await n.run("CHECK", withPrev, n.env("h1", p1));
  assert.equal(bad.json?.code, 106, JSON.stringify(bad.json));
  const r2 = await n.run("ADD", c, n.env("h2", p2));
  assert.equal(r2.code, 0, JSON.stringify(r2.json));
  assert.deepEqual(await postrouting(), before);
  const ok = await n.run("CHECK", withPrev, n.env("h1", p1));
  assert.equal(ok.code, 0, JSON.stringify(ok.json));
  // STATUS (what a runtime asks before it creates pods at all) puts it
  // back too.
  await deleteSnat();
  const s2 = await n.run("STATUS", c, {});
  assert.equal(s2.code, 0, JSON.stringify(s2.json));
  assert.deepEqual(await postrouting(), before);
  assert.ok(await p2.ping(n.addr(1)));
  await assertStateMatchesKernel(n);
});
