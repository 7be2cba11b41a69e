/**
 * `deno task state gc|repair` against a node netns whose pods are attached
 * by the real azure-vnet plugin (run as a runtime runs it). The tool runs
 * inside the node netns (`ip netns exec`), as an operator would on the node.
 */
import { assert } from "../_support/assert.ts";
import { requireRoot } from "../_support/privilege.ts";
import { ip, ipJson, TestNetns } from "../_support/netns.ts";
import type { AzureVnetState } from "@vnet/azure-vnet";

const MAIN = new URL("../../cni/plugins/azure-vnet/main.ts", import.meta.url)
  .pathname;
const TOOL = new URL("../../tools/state/main.ts", import.meta.url).pathname;

interface Run {
  code: number;
  out: string;
  err: string;
}

/** A node netns (eth0 to an "azure" router netns), a state dir and pods. */
class Node implements AsyncDisposable {
  readonly stack = new AsyncDisposableStack();
  node!: TestNetns;
  dir = "";
  constructor(readonly subnet: string) {}

  addr(n: number): string {
    return `${this.subnet}.${n}`;
  }

  static async create(subnet: string): Promise<Node> {
    requireRoot();
    const n = new Node(subnet);
    const azure = n.stack.use(await TestNetns.create());
    n.node = n.stack.use(await TestNetns.create());
    n.dir = await Deno.makeTempDir({ prefix: "cnitest-state-" });
    const dir = n.dir;
    n.stack.defer(() => Deno.remove(dir, { recursive: true }));
    await ip(
      ["link", "add", "eth0", "type", "veth", "peer", "name", "ah0"].concat(
        ["netns", azure.name],
      ),
      n.node.name,
    );
    await ip(["addr", "add", `${n.addr(1)}/24`, "dev", "ah0"], azure.name);
    await ip(["link", "set", "ah0", "up"], azure.name);
    await ip(["addr", "add", `${n.addr(4)}/24`, "dev", "eth0"], n.node.name);
    await ip(["link", "set", "eth0", "up"], n.node.name);
    await ip(["route", "add", "default", "via", n.addr(1)], n.node.name);
    return n;
  }

  async pod(): Promise<TestNetns> {
    return this.stack.use(await TestNetns.create());
  }

  conf(): Record<string, unknown> {
    return {
      cniVersion: "1.1.0",
      name: "azure",
      type: "azure-vnet",
      mode: "bridge",
      bridge: "azure0",
      ipam: {
        type: "azure-vnet-ipam",
        environment: "static",
        subnet: `${this.subnet}.0/24`,
        primaryIp: this.addr(4),
        addresses: [4, 5, 6, 7, 8].map((i) => this.addr(i)),
      },
    };
  }

  async exec(
    argv: string[],
    options: { env?: Record<string, string>; stdin?: string } = {},
  ): Promise<Run> {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", this.node.name, Deno.execPath(), ...argv],
      env: {
        AZURE_VNET_STATE_DIR: this.dir,
        AZURE_VNET_LOG_DIR: this.dir,
        ...options.env,
      },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin ?? ""));
    await w.close();
    const o = await child.output();
    const dec = new TextDecoder();
    return {
      code: o.code,
      out: dec.decode(o.stdout),
      err: dec.decode(o.stderr),
    };
  }

  /** Runs the plugin; returns the parsed result. */
  async plugin(
    command: string,
    pod: { id: string; netns: string },
  ): Promise<Record<string, unknown>> {
    const r = await this.exec(["run", "-A", MAIN], {
      stdin: JSON.stringify(this.conf()),
      env: {
        CNI_COMMAND: command,
        CNI_PATH: "/usr/lib/cni",
        CNI_CONTAINERID: pod.id,
        CNI_NETNS: pod.netns,
        CNI_IFNAME: "eth0",
      },
    });
    assert.equal(r.code, 0, `${command} ${pod.id}: ${r.out}${r.err}`);
    return r.out.trim() === "" ? {} : JSON.parse(r.out);
  }

  /** Runs the state tool inside the node netns. */
  async tool(...args: string[]): Promise<Run> {
    return await this.exec([
      "run",
      "-A",
      TOOL,
      ...args,
      "--state-dir",
      this.dir,
    ]);
  }

  async state(): Promise<AzureVnetState> {
    return JSON.parse(await Deno.readTextFile(`${this.dir}/azure-vnet.json`));
  }

  async ipam(): Promise<string> {
    return await Deno.readTextFile(`${this.dir}/azure-vnet-ipam.json`);
  }

  async ebtables(): Promise<string> {
    return await this.node.exec("ebtables", ["-t", "nat", "-L"]);
  }

  async neighbours(): Promise<string[]> {
    const n = await ipJson<{ dst: string }[]>(
      ["neigh", "show", "dev", "azure0"],
      this.node.name,
    );
    return n.map((x) => x.dst);
  }

  async links(): Promise<{ ifname: string; master?: string }[]> {
    return await ipJson(["link", "show"], this.node.name);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stack.disposeAsync();
  }
}

function ipOf(result: Record<string, unknown>): string {
  const ips = result.ips as { address: string }[] | undefined;
  return ips?.[0]?.address.split("/")[0] ?? "";
}

Deno.test("state gc cleans up after a pod netns deleted behind the plugin's back, and orphans", async (t) => {
  await using n = await Node.create("10.91.0");
  const p1 = await n.pod();
  const p2 = await n.pod();
  const r1 = await n.plugin("ADD", { id: "gone", netns: p1.path });
  const r2 = await n.plugin("ADD", { id: "alive", netns: p2.path });
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
  const ipam = JSON.parse(await n.ipam());
  ipam.pools[`${n.subnet}.0/24`].addresses[n.addr(8)] = {
    containerId: "ghost",
    ifName: "eth0",
  };
  await Deno.writeTextFile(
    `${n.dir}/azure-vnet-ipam.json`,
    JSON.stringify(ipam),
  );

  await t.step("--dry-run reports and changes nothing", async () => {
    const before = [await n.ipam(), JSON.stringify(await n.state())];
    const r = await n.tool("gc", "--dry-run");
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.out,
      /endpoint\s+gone\/eth0\s+netns \S+ gone, veth azv\w+ gone\s+would remove/,
    );
    assert.match(r.out, /veth\s+azv0000000000f\s+.*would delete/);
    assert.match(
      r.out,
      /ipam\s+10\.91\.0\.8 ghost\/eth0\s+no endpoint record\s+would release/,
    );
    assert.deepEqual([await n.ipam(), JSON.stringify(await n.state())], before);
  });

  await t.step(
    "gc removes the rules, neighbour, IP, record and orphans",
    async () => {
      const r = await n.tool("gc", "--grace-ms", "50", "--json");
      assert.equal(r.code, 0, r.out + r.err);
      const report = JSON.parse(r.out);
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
      const neigh = await n.neighbours();
      assert.ok(!neigh.includes(ip1), "neighbour of the gone pod removed");
      assert.ok(neigh.includes(ip2), "neighbour of the live pod kept");
      const held = await n.ipam();
      assert.doesNotMatch(held, /"gone"|"ghost"/);
      assert.match(held, /"alive"/);
      const names = (await n.links()).map((l) => l.ifname);
      assert.ok(!names.includes("azv0000000000f"));
      assert.equal(names.filter((x) => x.startsWith("azv")).length, 1);
      assert.ok(
        await p2.ping(n.addr(1)),
        "the live pod still reaches the gateway",
      );
    },
  );

  await t.step("a second gc finds nothing", async () => {
    const r = await n.tool("gc", "--grace-ms", "0");
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, "nothing to collect\n");
  });
});

Deno.test("state repair rebuilds a corrupt IPAM file, then a corrupt azure-vnet.json from the kernel", async (t) => {
  await using n = await Node.create("10.92.0");
  const p1 = await n.pod();
  const p2 = await n.pod();
  const p3 = await n.pod();
  const a1 = ipOf(await n.plugin("ADD", { id: "one", netns: p1.path }));
  const a2 = ipOf(await n.plugin("ADD", { id: "two", netns: p2.path }));

  await t.step("a corrupt IPAM file: in-use addresses stay held", async () => {
    await Deno.writeTextFile(
      `${n.dir}/azure-vnet-ipam.json`,
      '{"version":1,"po',
    );
    const r = await n.tool("repair");
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /azure-vnet\.json: parses; nothing to repair/);
    assert.match(
      r.out,
      /azure-vnet-ipam\.json: rebuilt; corrupt copy kept at \S+\.corrupt-/,
    );
    const held = JSON.parse(await n.ipam());
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
    const a3 = ipOf(await n.plugin("ADD", { id: "three", netns: p3.path }));
    assert.ok(![a1, a2, n.addr(4)].includes(a3), `new pod got ${a3}`);
    await n.plugin("DEL", { id: "one", netns: p1.path });
    assert.doesNotMatch(await n.ipam(), /"one"/);
    assert.ok(await p3.ping(n.addr(1)));
  });

  await t.step(
    "a corrupt azure-vnet.json is rebuilt from the kernel",
    async () => {
      const before = await n.state();
      await Deno.writeTextFile(`${n.dir}/azure-vnet.json`, "not json");
      const r = await n.tool("repair", "--file", "azure-vnet.json");
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /azure-vnet\.json: rebuilt/);
      const after = await n.state();
      const net = after.networks.azure;
      const want = before.networks.azure;
      assert.ok(net !== undefined && want !== undefined);
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
    await n.plugin("DEL", { id: "two", netns: p2.path });
    assert.doesNotMatch(
      await n.ebtables(),
      new RegExp(`${a2.replaceAll(".", "\\.")} `),
    );
    const r = await n.tool("teardown", "--force");
    assert.equal(r.code, 0, r.out + r.err);
    const links = await n.links();
    assert.ok(!links.some((l) => l.ifname === "azure0"));
    const addrs = await ipJson<{ addr_info: { local: string }[] }[]>(
      ["-4", "addr", "show", "dev", "eth0"],
      n.node.name,
    );
    assert.deepEqual(addrs.flatMap((a) => a.addr_info.map((i) => i.local)), [
      n.addr(4),
    ]);
  });
});
