/**
 * `deno task state gc|repair` against a node netns whose pods are attached
 * by the real azure-vnet plugin (run as a runtime runs it). The tool runs
 * inside the node netns (`ip netns exec`), as an operator would on the node.
 */
import { assert } from "../_support/assert.ts";
import { sourceNode } from "../_support/azure_node.ts";
import {
  type AzureNode,
  ip,
  links,
  neighbours,
  type Netns,
  spawnProcess,
  v4addrs,
} from "../../tools/testbed/mod.ts";

import { hostVethName } from "../../cni/plugins/azure-vnet/names.ts";
import { withAttachmentLock } from "../../cni/plugins/azure-vnet/attachment_lock.ts";
import { withState } from "../../cni/plugins/azure-vnet/state.ts";

const STATE_TOOL = new URL("../../tools/state/main.ts", import.meta.url)
  .pathname;

/** A 1.1.0 config with a static pool of .4 to .8 (.4 is the node's own). */
function conf(n: AzureNode): Record<string, unknown> {
  return n.conf(n.staticIpam([4, 5, 6, 7, 8].map((i) => n.addr(i))), {
    cniVersion: "1.1.0",
  });
}

/** Runs the plugin with {@link conf}; asserts success, returns the result. */
async function plugin(
  n: AzureNode,
  command: string,
  pod: { id: string; netns: Netns },
): Promise<Record<string, unknown>> {
  const r = await n.run(command, conf(n), n.env(pod.id, pod.netns));
  assert.equal(r.code, 0, `${command} ${pod.id}: ${r.stdout}${r.stderr}`);
  return r.json ?? {};
}

function ipOf(result: Record<string, unknown>): string {
  const ips = result.ips as { address: string }[] | undefined;
  return ips?.[0]?.address.split("/")[0] ?? "";
}

Deno.test("state gc cleans up after a pod netns deleted behind the plugin's back, and orphans", async (t) => {
  await using n = await sourceNode("10.91.0.0/24");
  const p1 = await n.pod();
  const p2 = await n.pod();
  const r1 = await plugin(n, "ADD", { id: "gone", netns: p1 });
  const r2 = await plugin(n, "ADD", { id: "alive", netns: p2 });
  const ip1 = ipOf(r1);
  const ip2 = ipOf(r2);
  // Behind the plugin's back: the pod netns goes (its veth pair with it), a
  // stray azv veth sits on the bridge, and a reservation has no endpoint.
  await p1[Symbol.asyncDispose]();
  await ip(
    ["link", "add", "azv0000000000f", "type", "veth", "peer", "name", "x0"],
    n.node.name,
  );
  await ip(["link", "set", "azv0000000000f", "master", "azure0"], n.node.name);
  const ipam = JSON.parse(await n.ipamState());
  ipam.pools[n.subnet].addresses[n.addr(8)] = {
    containerId: "ghost",
    ifName: "eth0",
  };
  await Deno.writeTextFile(
    `${n.dir}/azure-vnet-ipam.json`,
    JSON.stringify(ipam),
  );

  await t.step("--dry-run reports and changes nothing", async () => {
    const before = [await n.ipamState(), JSON.stringify(await n.state())];
    const r = await n.stateTool(["gc", "--dry-run"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /endpoint\s+gone\/eth0\s+veth azv\w+ gone\s+would remove/,
    );
    assert.match(r.stdout, /veth\s+azv0000000000f\s+.*would delete/);
    assert.match(
      r.stdout,
      /ipam\s+10\.91\.0\.8 ghost\/eth0\s+no endpoint record\s+would release/,
    );
    assert.deepEqual(
      [await n.ipamState(), JSON.stringify(await n.state())],
      before,
    );
  });

  await t.step(
    "gc removes the rules, neighbour, IP, record and orphans",
    async () => {
      const r = await n.stateTool(["gc", "--grace-ms", "50", "--json"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const report = JSON.parse(r.stdout);
      assert.deepEqual(
        report.actions.map((a: { kind: string; outcome: string }) =>
          `${a.kind} ${a.outcome}`
        ),
        [`endpoint removed (${ip1}/24)`, "veth deleted", "ipam released"],
      );
      assert.deepEqual(Object.keys((await n.state()).endpoints), [
        "alive/eth0",
      ]);
      const eb = await n.ebtables();
      assert.doesNotMatch(eb, new RegExp(`${ip1.replaceAll(".", "\\.")} `));
      assert.match(eb, new RegExp(`--ip-dst ${ip2.replaceAll(".", "\\.")} `));
      const neigh = (await neighbours(n.node.name, "azure0")).map((x) => x.dst);
      assert.ok(!neigh.includes(ip1), "neighbour of the gone pod removed");
      assert.ok(neigh.includes(ip2), "neighbour of the live pod kept");
      const held = await n.ipamState();
      assert.doesNotMatch(held, /"gone"|"ghost"/);
      assert.match(held, /"alive"/);
      const names = (await links(n.node.name)).map((l) => l.ifname);
      assert.ok(!names.includes("azv0000000000f"));
      assert.equal(names.filter((x) => x.startsWith("azv")).length, 1);
      assert.ok(
        await p2.ping(n.addr(1)),
        "the live pod still reaches the gateway",
      );
    },
  );

  await t.step("a second gc finds nothing", async () => {
    const r = await n.stateTool(["gc", "--grace-ms", "0"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "nothing to collect\n");
  });
});

Deno.test("state gc keeps a live pod whose netns path it cannot see, and refuses outside the node's netns", async (t) => {
  await using n = await sourceNode("10.93.0.0/24");
  const p1 = await n.pod();
  const p2 = await n.pod();
  const r1 = await plugin(n, "ADD", { id: "hidden", netns: p1 });
  await plugin(n, "ADD", { id: "seen", netns: p2 });
  const ip1 = ipOf(r1);
  const ifs = r1.interfaces as { name: string; mac: string }[];
  const hostVeth = ifs[0]?.name ?? "";
  const podMac = ifs[1]?.mac ?? "";
  // The record's netns path is out of sight, as in a debug container with
  // the node's network but not its /run/netns; the pod's netns lives on.
  const st = await n.state();
  const ep = st.endpoints["hidden/eth0"];
  assert.equal(ep?.netns, p1.path);
  if (ep !== undefined) {
    st.endpoints["hidden/eth0"] = {
      ...ep,
      netns: `${n.dir}/not-mounted-here/${p1.name}`,
    };
  }
  await Deno.writeTextFile(n.statePath, JSON.stringify(st));
  const ip1Rule = new RegExp(` ${ip1.replaceAll(".", "\\.")} .*${podMac}`);
  const snapshot = async () => [
    await Deno.readTextFile(n.statePath),
    await n.ipamState(),
    await n.ebtables(),
    JSON.stringify(await neighbours(n.node.name, "azure0")),
  ];

  await t.step(
    "gc keeps its veth, neighbour, rules and reservation",
    async () => {
      const before = await snapshot();
      const r = await n.stateTool(["gc", "--grace-ms", "0", "--json"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).actions, []);
      assert.deepEqual(await snapshot(), before);
      assert.deepEqual(Object.keys((await n.state()).endpoints).sort(), [
        "hidden/eth0",
        "seen/eth0",
      ]);
      assert.ok((await links(n.node.name)).some((l) => l.ifname === hostVeth));
      const neigh = (await neighbours(n.node.name, "azure0")).find((x) =>
        x.dst === ip1
      );
      assert.equal(neigh?.lladdr, podMac);
      assert.equal(
        (await n.ebtables()).split("\n").filter((l) => ip1Rule.test(l)).length,
        2,
      );
      assert.match(await n.ipamState(), /"hidden"/);
      assert.ok(await p1.ping(n.addr(1)), "the pod still reaches the gateway");
    },
  );

  await t.step(
    "gc in a netns without the node's NIC (a pod's) refuses and changes nothing",
    async () => {
      const before = await snapshot();
      for (const dry of [["--dry-run"], []]) {
        const r = await spawnProcess(
          [Deno.execPath(), "run", "-A", STATE_TOOL, "gc", ...dry]
            .concat(["--grace-ms", "0", "--state-dir", n.dir]),
          { clearEnv: true, netns: p2.name },
        ).done;
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(
          r.stderr,
          /master "eth0" \(MAC .*\) of network "azure" is not in this network namespace/,
        );
        assert.equal(r.stdout, "");
      }
      assert.deepEqual(await snapshot(), before);
      assert.ok(await p1.ping(n.addr(1)));
      assert.ok(await p2.ping(n.addr(1)));
    },
  );
});

Deno.test("state repair rebuilds a corrupt IPAM file, then a corrupt azure-vnet.json from the kernel", async (t) => {
  await using n = await sourceNode("10.92.0.0/24");
  const p1 = await n.pod();
  const p2 = await n.pod();
  const p3 = await n.pod();
  const a1 = ipOf(await plugin(n, "ADD", { id: "one", netns: p1 }));
  const a2 = ipOf(await plugin(n, "ADD", { id: "two", netns: p2 }));

  await t.step("a corrupt IPAM file: in-use addresses stay held", async () => {
    await Deno.writeTextFile(
      `${n.dir}/azure-vnet-ipam.json`,
      '{"version":1,"po',
    );
    const r = await n.stateTool(["repair"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /azure-vnet\.json: parses; nothing to repair/);
    assert.match(
      r.stdout,
      /azure-vnet-ipam\.json: rebuilt; corrupt copy kept at \S+\.corrupt-/,
    );
    const held = JSON.parse(await n.ipamState());
    const pool = held.pools["10.92.0.0/24"];
    assert.deepEqual(pool.addresses[a1], {
      containerId: "one",
      ifName: "eth0",
    });
    assert.deepEqual(pool.addresses[a2], {
      containerId: "two",
      ifName: "eth0",
    });
    assert.equal(held.lastRefresh, 0);
    const a3 = ipOf(await plugin(n, "ADD", { id: "three", netns: p3 }));
    assert.ok(![a1, a2, n.addr(4)].includes(a3), `new pod got ${a3}`);
    await plugin(n, "DEL", { id: "one", netns: p1 });
    assert.doesNotMatch(await n.ipamState(), /"one"/);
    assert.ok(await p3.ping(n.addr(1)));
  });

  await t.step(
    "a corrupt azure-vnet.json is rebuilt from the kernel",
    async () => {
      const before = await n.state();
      await Deno.writeTextFile(`${n.dir}/azure-vnet.json`, "not json");
      const r = await n.stateTool(["repair", "--file", "azure-vnet.json"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /azure-vnet\.json: rebuilt/);
      const after = await n.state();
      const net = after.networks.azure;
      const want = before.networks.azure;
      assert.ok(net?.mode === "bridge" && want?.mode === "bridge");
      for (
        const k of [
          "bridge",
          "master",
          "masterMac",
          "subnet",
          "gateway",
          "primaryIp",
          "savedAddrs",
        ] as const
      ) {
        assert.deepEqual(net[k], want[k], k);
      }
      assert.deepEqual(
        Object.keys(after.endpoints).sort(),
        Object.keys(before.endpoints).sort(),
      );
      for (const [k, e] of Object.entries(before.endpoints)) {
        const got = after.endpoints[k];
        assert.deepEqual(
          [got?.hostVeth, got?.podMac, got?.addresses, got?.netns],
          [e.hostVeth, e.podMac, e.addresses, e.netns],
          k,
        );
      }
    },
  );

  await t.step("the rebuilt state serves DEL and teardown", async () => {
    await plugin(n, "DEL", { id: "two", netns: p2 });
    assert.doesNotMatch(
      await n.ebtables(),
      new RegExp(`${a2.replaceAll(".", "\\.")} `),
    );
    const r = await n.stateTool(["teardown", "--force"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const ls = await links(n.node.name);
    assert.ok(!ls.some((l) => l.ifname === "azure0"));
    assert.deepEqual(await v4addrs(n.node.name, "eth0"), [
      `${n.addr(4)}/24`,
    ]);
  });
});

Deno.test("state gc leaves alone what an ADD at work (its attachment's lock held) has not recorded yet, and collects it once the lock is free", async () => {
  await using n = await sourceNode("10.97.0.0/24");
  const p1 = await n.pod();
  const p2 = await n.pod();
  await plugin(n, "ADD", { id: "first", netns: p1 });
  const ip2 = ipOf(await plugin(n, "ADD", { id: "slow", netns: p2 }));
  const hostVeth = await hostVethName("azure", {
    containerId: "slow",
    ifName: "eth0",
  });
  // As an ADD is before it records: veth, neighbour, rules and reservation
  // made, no record, its lock held (here by this process).
  let release = () => {};
  const held = new Promise<void>((r) => release = r);
  let locked = () => {};
  const isLocked = new Promise<void>((r) => locked = r);
  const holding = withAttachmentLock({ stateDir: n.dir, hostVeth }, () => {
    locked();
    return held;
  });
  try {
    await isLocked;
    await withState(n.dir, async (s) => {
      delete s.state.endpoints["slow/eth0"];
      await s.save();
    });
    const gc = await n.stateTool(["gc", "--grace-ms", "0", "--json"]);
    assert.equal(gc.code, 0, gc.stdout + gc.stderr);
    assert.match(gc.stdout, /at work/);
    assert.ok((await links(n.node.name)).some((l) => l.ifname === hostVeth));
    assert.match(await n.ipamState(), /"slow"/);
    assert.ok(
      (await neighbours(n.node.name, "azure0")).some((x) => x.dst === ip2),
    );
    assert.ok(await p2.ping(n.addr(1)), "the pod still reaches the gateway");
  } finally {
    release();
    await holding;
  }
  // The ADD is gone (its lock free): what it left is collected.
  const gc = await n.stateTool(["gc", "--grace-ms", "0", "--json"]);
  assert.equal(gc.code, 0, gc.stdout + gc.stderr);
  assert.ok(!(await links(n.node.name)).some((l) => l.ifname === hostVeth));
  assert.doesNotMatch(await n.ipamState(), /"slow"/);
  assert.ok(
    !(await neighbours(n.node.name, "azure0")).some((x) => x.dst === ip2),
  );
  assert.doesNotMatch(await n.ebtables(), new RegExp(`${ip2} `));
});
