/**
 * Adoption of a node the Go azure-vnet v0.91 set up (#17). The node of
 * `tests/testdata/acn-v0.91-node` is rebuilt in namespaces of our own
 * (random `cnitest-` names) from the fixture's data: its links with their
 * MACs, addresses, routes, bridge ports, the three pods, the ebtables nat
 * rules (restored from the captured `ebtables-save`) and the Go state files
 * byte for byte. Then the built plugin (`deno task build`, dist/azure-vnet)
 * runs inside the node netns as a runtime runs it: the first call adopts
 * the state, a DEL removes exactly what the Go DEL removed (compared with
 * the fixture's `after-del-pod-3/`), new ADDs never get an old pod's
 * address, CHECK passes on old pods, GC keeps the listed old pods, and
 * pings work before and after. Traffic stays inside these namespaces: the
 * fixture's 10.99.0.0/24 lives only in them.
 */
import { assert } from "../_support/assert.ts";
import { requireRoot } from "../_support/privilege.ts";
import {
  AZURE_VNET_DIST,
  type CniRun,
  ip,
  links,
  Netns,
  randomName,
  resultIp,
  routes,
  runCni,
  spawnProcess,
  v4addrs,
} from "../../tools/testbed/mod.ts";

const FIXTURE = new URL("../testdata/acn-v0.91-node/", import.meta.url);
const STATE_TOOL = new URL("../../tools/state/main.ts", import.meta.url)
  .pathname;

function text(name: string): string {
  return Deno.readTextFileSync(new URL(name, FIXTURE));
}

function json<T>(name: string): T {
  return JSON.parse(text(name)) as T;
}

interface FixtureLink {
  ifname: string;
  address: string;
  flags: string[];
  master?: string;
}

interface FixtureAddrs {
  ifname: string;
  // deno-lint-ignore camelcase
  addr_info: {
    family: string;
    local: string;
    prefixlen: number;
    scope: string;
  }[];
}

/** One pod of pods.tsv. */
interface FixturePod {
  index: number;
  containerId: string;
  ip: string;
  hostVeth: string;
  podMac: string;
}

function fixturePods(): FixturePod[] {
  const [, ...rows] = text("pods.tsv").trim().split("\n");
  return rows.map((r) => r.split("\t")).map((c) => ({
    index: Number(c[0]),
    containerId: c[2] ?? "",
    ip: c[3] ?? "",
    hostVeth: c[5] ?? "",
    podMac: c[8] ?? "",
  }));
}

/** The `-A` lines of an ebtables-save listing. */
function ruleLines(listing: string): string[] {
  return listing.split("\n").filter((l) => l.startsWith("-A ")).sort();
}

/** The global IPv4 addresses per link of an `ip -j addr` capture. */
function globalV4(addrs: FixtureAddrs[]): string[] {
  return addrs.flatMap((a) =>
    a.addr_info.filter((i) => i.family === "inet" && i.scope === "global")
      .map((i) => `${a.ifname} ${i.local}/${i.prefixlen}`)
  ).sort();
}

/** The static IPAM equivalent of `nmagent.xml` (what the wireserver said). */
function ipamFromNmagent(): Record<string, unknown> {
  const xml = text("nmagent.xml");
  const mac = /MacAddress="([0-9A-F]{12})"/.exec(xml)?.[1] ?? "";
  const prefix = /Prefix="([^"]+)"/.exec(xml)?.[1] ?? "";
  const addresses = [
    ...xml.matchAll(/Address="([\d.]+)" IsPrimary="(true|false)"/g),
  ].map((m) => ({ address: m[1] ?? "", isPrimary: m[2] === "true" }));
  return {
    type: "azure-vnet-ipam",
    environment: "static",
    interfaces: [{
      macAddress: mac,
      isPrimary: true,
      subnets: [{ prefix, addresses }],
    }],
  };
}

/** The node of the fixture, rebuilt; everything goes with `stack`. */
class AcnNode implements AsyncDisposable {
  readonly stack = new AsyncDisposableStack();
  node!: Netns;
  fab!: Netns;
  dir!: string;
  pods = new Map<number, { pod: FixturePod; netns: Netns }>();

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stack.disposeAsync();
  }

  static async rebuild(): Promise<AcnNode> {
    const n = new AcnNode();
    try {
      await n.#build();
      return n;
    } catch (err) {
      await n.stack.disposeAsync();
      throw err;
    }
  }

  async #build(): Promise<void> {
    const linksOf = new Map(
      json<FixtureLink[]>("node-links.json").map((l) => [l.ifname, l]),
    );
    const mac = (name: string) => linksOf.get(name)?.address ?? "";
    const noMulticast = (name: string) =>
      !(linksOf.get(name)?.flags.includes("MULTICAST") ?? true);
    this.fab = this.stack.use(await Netns.create(randomName()));
    this.node = this.stack.use(await Netns.create(randomName()));
    this.dir = await Deno.makeTempDir({ prefix: "cnitest-acn-" });
    const dir = this.dir;
    this.stack.defer(() => Deno.remove(dir, { recursive: true }));
    const node = this.node.name;
    const fab = this.fab.name;
    // The fabric: fab0 (its MAC as the node's neighbour table learned it)
    // holds the gateway 10.99.0.1.
    const gwNeigh = json<{ dst: string; lladdr?: string }[]>(
      "node-neigh.json",
    ).find((x) => x.dst === "10.99.0.1" && x.lladdr !== undefined);
    await ip(
      ["link", "add", "eth0", "address", mac("eth0"), "type", "veth"]
        .concat(["peer", "name", "fab0", "netns", fab]),
      node,
    );
    await ip(["link", "set", "fab0", "address", gwNeigh?.lladdr ?? ""], fab);
    await ip(["addr", "add", "10.99.0.1/24", "dev", "fab0"], fab);
    await ip(["link", "set", "fab0", "up"], fab);
    // The node as v0.91 left it: eth0 enslaved to azure0 (hairpin on), the
    // node's address on both (the move half failed), the default route on
    // azure0.
    const addrs = globalV4(json<FixtureAddrs[]>("node-addrs.json"));
    const addrOn = (dev: string) =>
      addrs.filter((a) => a.startsWith(`${dev} `)).map((a) => a.split(" ")[1]);
    for (const a of addrOn("eth0")) {
      await ip(["addr", "add", a ?? "", "dev", "eth0"], node);
    }
    await ip(
      ["link", "add", "azure0", "address", mac("azure0"), "type", "bridge"],
      node,
    );
    await ip(["link", "set", "eth0", "master", "azure0"], node);
    await ip(
      ["link", "set", "dev", "eth0", "type", "bridge_slave", "hairpin", "on"],
      node,
    );
    if (noMulticast("eth0")) {
      await ip(["link", "set", "eth0", "multicast", "off"], node);
    }
    await ip(["link", "set", "eth0", "up"], node);
    await ip(["link", "set", "azure0", "up"], node);
    for (const a of addrOn("azure0")) {
      await ip(["addr", "add", a ?? "", "dev", "azure0"], node);
    }
    const routes = json<{ dst: string; gateway?: string; dev: string }[]>(
      "node-routes.json",
    );
    for (const r of routes) {
      if (r.dst !== "default" || r.gateway === undefined) continue;
      await ip(
        ["route", "add", "default", "via", r.gateway, "dev", r.dev],
        node,
      );
    }
    // The pods: host veth azveth<7> on azure0, eth0 in the pod with the
    // address and the default route of the capture.
    for (const pod of fixturePods()) {
      const ns = this.stack.use(await Netns.create(randomName()));
      this.pods.set(pod.index, { pod, netns: ns });
      await ip(
        ["link", "add", pod.hostVeth, "address", mac(pod.hostVeth), "type"]
          .concat(["veth", "peer", "name", "eth0", "address", pod.podMac])
          .concat(["netns", ns.name]),
        node,
      );
      await ip(["link", "set", pod.hostVeth, "master", "azure0"], node);
      if (noMulticast(pod.hostVeth)) {
        await ip(["link", "set", pod.hostVeth, "multicast", "off"], node);
      }
      await ip(["link", "set", pod.hostVeth, "up"], node);
      const podAddrs = globalV4(
        json<FixtureAddrs[]>(`pod-${pod.index}-addrs.json`),
      );
      for (const a of podAddrs) {
        const [dev, cidr] = a.split(" ");
        await ip(["addr", "add", cidr ?? "", "dev", dev ?? ""], ns.name);
      }
      await ip(["link", "set", "eth0", "multicast", "off"], ns.name);
      await ip(["link", "set", "eth0", "up"], ns.name);
      const podRoutes = json<
        { dst: string; gateway?: string; dev: string; protocol?: string }[]
      >(`pod-${pod.index}-routes.json`);
      for (const r of podRoutes) {
        if (r.dst !== "default" || r.gateway === undefined) continue;
        await ip(
          ["route", "add", "default", "via", r.gateway, "dev", r.dev]
            .concat(["proto", r.protocol ?? "static"]),
          ns.name,
        );
      }
    }
    const restore = await spawnProcess(["ebtables-restore"], {
      stdin: text("ebtables-nat.txt"),
      netns: node,
    }).done;
    assert.equal(restore.code, 0, restore.stderr);
    for (const f of ["azure-vnet.json", "azure-vnet-ipam.json"]) {
      await Deno.writeFile(
        `${dir}/${f}`,
        await Deno.readFile(new URL(f, FIXTURE)),
      );
    }
  }

  pod(index: number): { pod: FixturePod; netns: Netns } {
    const p = this.pods.get(index);
    if (p === undefined) throw new Error(`no pod ${index}`);
    return p;
  }

  async rules(): Promise<string[]> {
    return ruleLines(await this.node.exec("ebtables-save", ["-t", "nat"]));
  }

  async linkNames(): Promise<string[]> {
    return (await links(this.node.name)).map((l) => l.ifname).sort();
  }

  async nodeAddrs(): Promise<string[]> {
    return [
      ...(await v4addrs(this.node.name, "eth0")).map((a) => `eth0 ${a}`),
      ...(await v4addrs(this.node.name, "azure0")).map((a) => `azure0 ${a}`),
    ].sort();
  }

  async ipam(): Promise<Record<string, { containerId?: string }>> {
    const s = JSON.parse(
      await Deno.readTextFile(`${this.dir}/azure-vnet-ipam.json`),
    );
    return s.pools["10.99.0.0/24"].addresses;
  }

  run(
    command: string,
    conf: Record<string, unknown>,
    attachment: {
      containerId: string;
      netns: Netns | undefined;
      env?: Record<string, string>;
    },
  ): Promise<CniRun> {
    return runCni({
      argv: [AZURE_VNET_DIST],
      command,
      conf,
      env: {
        ...attachment.env,
        CNI_CONTAINERID: attachment.containerId,
        CNI_NETNS: attachment.netns?.path ?? "",
        CNI_IFNAME: "eth0",
        AZURE_VNET_STATE_DIR: this.dir,
        AZURE_VNET_LOG_DIR: this.dir,
      },
      netns: this.node.name,
    });
  }
}

/** A 64-hex container ID starting with `prefix`. */
async function containerId(prefix: string, seed: string): Promise<string> {
  const d = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(seed)),
  );
  const hex = Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
  return (prefix + hex).slice(0, 64);
}

/** The Go ADD result of pod `index` as a 1.1.0 prevResult. */
function prevResult(index: number): Record<string, unknown> {
  const r = json<Record<string, unknown>>(`add-acn-pod-${index}.json`);
  const ips = (r.ips as Record<string, unknown>[]).map((
    { version: _v, ...rest },
  ) => rest);
  return { ...r, cniVersion: "1.1.0", ips };
}

Deno.test("azure-vnet adopts a node set up by the Go azure-vnet v0.91: DEL, ADD, CHECK, GC, pings", async (t) => {
  requireRoot();
  await Deno.stat(AZURE_VNET_DIST).catch(() => {
    throw new Error(`${AZURE_VNET_DIST} is missing: run \`deno task build\``);
  });
  await using n = await AcnNode.rebuild();
  const goConf = {
    ...json<Record<string, unknown>>("conflist.json"),
    ipam: ipamFromNmagent(),
  };
  const conf11 = { ...goConf, cniVersion: "1.1.0" };
  const [p1, p2, p3] = [n.pod(1), n.pod(2), n.pod(3)];
  const oldIps = new Set([p1, p2, p3].map((p) => p.pod.ip.split("/")[0]));

  await t.step(
    "the rebuilt node is the fixture's, and its pods ping",
    async () => {
      assert.deepEqual(
        await n.linkNames(),
        json<FixtureLink[]>("node-links.json").map((l) => l.ifname).sort(),
      );
      assert.deepEqual(await n.rules(), ruleLines(text("ebtables-nat.txt")));
      assert.deepEqual(
        await n.nodeAddrs(),
        globalV4(json<FixtureAddrs[]>("node-addrs.json")),
      );
      for (const p of [p1, p2, p3]) {
        assert.ok(await p.netns.ping("10.99.0.1"), `pod ${p.pod.index} -> gw`);
      }
      assert.ok(
        await p1.netns.ping(p2.pod.ip.split("/")[0] ?? ""),
        "pod1 -> pod2",
      );
      assert.ok(await n.fab.ping(p1.pod.ip.split("/")[0] ?? ""), "fab -> pod1");
    },
  );

  await t.step(
    "state adopt --dry-run shows the conversion and writes nothing",
    async () => {
      const before = await Deno.readFile(`${n.dir}/azure-vnet.json`);
      const r = await spawnProcess(
        [Deno.execPath(), "run", "-A", STATE_TOOL, "adopt", "--dry-run"]
          .concat(["--state-dir", n.dir]),
        { netns: n.node.name },
      ).done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        /azure-vnet\.json: Go azure-vnet v0\.91: would convert/,
      );
      for (const p of [p1, p2, p3]) {
        assert.match(
          r.stdout,
          new RegExp(`${p.pod.hostVeth}\\s+${p.pod.podMac}\\s+${p.pod.ip}`),
        );
      }
      assert.deepEqual(await Deno.readFile(`${n.dir}/azure-vnet.json`), before);
    },
  );

  await t.step(
    "the first call (DEL of pod 3) adopts the state and removes exactly what the Go DEL removed",
    async () => {
      const del = await n.run("DEL", goConf, {
        containerId: p3.pod.containerId,
        netns: p3.netns,
      });
      assert.equal(del.code, 0, `${del.stdout}${del.stderr}`);
      assert.equal(del.stdout, "");
      for (const f of ["azure-vnet.json", "azure-vnet-ipam.json"]) {
        assert.deepEqual(
          await Deno.readFile(`${n.dir}/${f}.acn-backup`),
          await Deno.readFile(new URL(f, FIXTURE)),
          `${f}.acn-backup`,
        );
      }
      const state = JSON.parse(
        await Deno.readTextFile(`${n.dir}/azure-vnet.json`),
      );
      assert.equal(state.version, 1);
      assert.deepEqual(Object.keys(state.endpoints).sort(), [
        "acn:acnpod14-eth0/eth0",
        "acn:acnpod2d-eth0/eth0",
      ]);
      // The kernel is what the Go plugin's own DEL left.
      const after = "after-del-pod-3/";
      assert.deepEqual(
        await n.linkNames(),
        json<FixtureLink[]>(`${after}node-links.json`).map((l) => l.ifname)
          .sort(),
      );
      assert.deepEqual(
        await n.rules(),
        ruleLines(text(`${after}ebtables-nat.txt`)),
      );
      assert.deepEqual(
        await n.nodeAddrs(),
        globalV4(json<FixtureAddrs[]>(`${after}node-addrs.json`)),
      );
      assert.deepEqual(
        (await links(p3.netns.name)).map((l) => l.ifname),
        ["lo"],
      );
      const held = await n.ipam();
      assert.equal(held["10.99.0.10"]?.containerId, undefined);
      assert.equal(held["10.99.0.12"]?.containerId, "acn:acnpod14-eth0");
      assert.equal(held["10.99.0.8"]?.containerId, "acn:acnpod2d-eth0");
      const log = await Deno.readTextFile(`${n.dir}/azure-vnet.log`);
      assert.match(log, /Adopted the Go azure-vnet/);
    },
  );

  const fresh: { containerId: string; netns: Netns; ip: string }[] = [];
  await t.step(
    "new ADDs never get an old pod's address, down to the last free one",
    async () => {
      // The first new pod shares pod 1's first 8 characters (its Go
      // endpoint ID): it must get an attachment of its own.
      const ids = [
        await containerId("acnpod14", "twin of pod 1"),
        ...await Promise.all(
          [1, 2, 3, 4, 5].map((i) => containerId("", `new pod ${i}`)),
        ),
      ];
      for (const id of ids) {
        const netns = n.stack.use(await Netns.create(randomName()));
        const add = await n.run("ADD", goConf, { containerId: id, netns });
        assert.equal(add.code, 0, `${add.stdout}${add.stderr}`);
        const ip = (resultIp(add) ?? "").split("/")[0] ?? "";
        fresh.push({ containerId: id, netns, ip });
      }
      const ips = fresh.map((f) => f.ip);
      assert.equal(new Set(ips).size, ips.length, `${ips}`);
      for (const ip of ips) {
        assert.ok(!oldIps.has(ip) || ip === "10.99.0.10", ip);
      }
      assert.ok(!ips.includes("10.99.0.12") && !ips.includes("10.99.0.8"));
      // All 8 secondaries are now held: 2 old pods, 6 new ones.
      const full = n.stack.use(await Netns.create(randomName()));
      const none = await n.run("ADD", goConf, {
        containerId: await containerId("", "one too many"),
        netns: full,
      });
      assert.equal(none.code, 1, none.stdout);
      assert.equal(none.json?.code, 100);
      // Pod 1 keeps its veth and its pod end.
      const names = await n.linkNames();
      assert.ok(
        names.includes("azvethacnpod1") && names.includes("azvethacnpod2"),
      );
      const pod1 = (await links(p1.netns.name)).find((l) =>
        l.ifname === "eth0"
      );
      assert.equal(pod1?.address, p1.pod.podMac);
    },
  );

  await t.step(
    "a DEL of another container sharing pod 1's first 8 characters leaves pod 1 alone",
    async () => {
      const before = [await n.linkNames(), await n.rules(), await n.ipam()];
      // As a runtime sends after that container's failed ADD: no netns.
      const del = await n.run("DEL", goConf, {
        containerId: await containerId("acnpod14", "never added"),
        netns: undefined,
      });
      assert.equal(del.code, 0, `${del.stdout}${del.stderr}`);
      assert.deepEqual(
        [await n.linkNames(), await n.rules(), await n.ipam()],
        before,
      );
      assert.equal(
        (await n.ipam())["10.99.0.12"]?.containerId,
        "acn:acnpod14-eth0",
      );
      assert.ok(await p1.netns.ping("10.99.0.1"), "pod1 -> gw");
    },
  );

  await t.step("CHECK of the old pods passes", async () => {
    for (const p of [p1, p2]) {
      const r = await n.run(
        "CHECK",
        { ...conf11, prevResult: prevResult(p.pod.index) },
        { containerId: p.pod.containerId, netns: p.netns },
      );
      assert.equal(r.code, 0, `pod ${p.pod.index}: ${r.stdout}${r.stderr}`);
    }
  });

  await t.step(
    "a repeated ADD of an old pod returns its result and changes nothing",
    async () => {
      const before = [await n.linkNames(), await n.rules(), await n.ipam()];
      const add = await n.run("ADD", goConf, {
        containerId: p1.pod.containerId,
        netns: p1.netns,
      });
      assert.equal(add.code, 0, `${add.stdout}${add.stderr}`);
      assert.equal(resultIp(add), p1.pod.ip);
      assert.deepEqual(
        [await n.linkNames(), await n.rules(), await n.ipam()],
        before,
      );
    },
  );

  const listed = () =>
    [p1, p2].map((p) => p.pod.containerId).concat(
      fresh.map((f) => f.containerId),
    ).map((id) => ({ containerID: id, ifname: "eth0" }));

  await t.step("GC keeps every listed old pod", async () => {
    const rules = await n.rules();
    const names = await n.linkNames();
    const held = await n.ipam();
    const gc = await n.run(
      "GC",
      { ...conf11, "cni.dev/valid-attachments": listed() },
      { containerId: "", netns: undefined },
    );
    assert.equal(gc.code, 0, `${gc.stdout}${gc.stderr}`);
    assert.deepEqual(await n.rules(), rules);
    assert.deepEqual(await n.linkNames(), names);
    assert.deepEqual(await n.ipam(), held);
  });

  await t.step(
    "pings after: old and new pods reach the gateway, each other and the fabric",
    async () => {
      const a = fresh[1];
      assert.ok(a !== undefined);
      for (
        const [from, to] of [
          [p1.netns, "10.99.0.1"],
          [p2.netns, "10.99.0.1"],
          [p1.netns, p2.pod.ip.split("/")[0] ?? ""],
          [a.netns, "10.99.0.1"],
          [a.netns, p1.pod.ip.split("/")[0] ?? ""],
          [n.fab, p1.pod.ip.split("/")[0] ?? ""],
          [n.fab, a.ip],
        ] as const
      ) {
        assert.ok(await from.ping(to), `${from.name} -> ${to}`);
      }
    },
  );

  await t.step("GC without pod 2 removes it as its DEL would", async () => {
    const gc = await n.run(
      "GC",
      {
        ...conf11,
        "cni.dev/valid-attachments": listed().filter((a) =>
          a.containerID !== p2.pod.containerId
        ),
      },
      { containerId: "", netns: undefined },
    );
    assert.equal(gc.code, 0, `${gc.stdout}${gc.stderr}`);
    assert.ok(!(await n.linkNames()).includes("azvethacnpod2"));
    assert.deepEqual(
      (await n.rules()).filter((r) => r.includes("10.99.0.8 ")),
      [],
    );
    assert.equal((await n.ipam())["10.99.0.8"]?.containerId, undefined);
    assert.ok((await n.linkNames()).includes("azvethacnpod1"));
    assert.ok(await p1.netns.ping("10.99.0.1"), "pod1 -> gw");
  });

  await t.step(
    "DEL of every pod leaves the Go plugin's host network",
    async () => {
      // Pod 1 through an exec'd azure-vnet-ipam (ipamExec): its address is
      // released in process all the same.
      const exec = await n.run("DEL", { ...goConf, ipamExec: true }, {
        containerId: p1.pod.containerId,
        netns: p1.netns,
        env: { CNI_PATH: new URL(".", `file://${AZURE_VNET_DIST}`).pathname },
      });
      assert.equal(exec.code, 0, `${exec.stdout}${exec.stderr}`);
      assert.equal((await n.ipam())["10.99.0.12"]?.containerId, undefined);
      for (const a of fresh) {
        const r = await n.run("DEL", goConf, a);
        assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
      }
      assert.deepEqual(await n.linkNames(), ["azure0", "eth0", "lo"]);
      assert.deepEqual(
        await n.rules(),
        ruleLines(text("ebtables-nat.txt")).filter(
          (r) => !/10\.99\.0\.(12|8|10) /.test(r),
        ),
      );
      const held = Object.entries(await n.ipam()).filter(([, r]) =>
        r.containerId !== undefined
      );
      assert.deepEqual(held, []);
    },
  );

  await t.step(
    "state teardown gives eth0 back the node's address and default route",
    async () => {
      const r = await spawnProcess(
        [Deno.execPath(), "run", "-A", STATE_TOOL, "teardown"]
          .concat(["--state-dir", n.dir]),
        { netns: n.node.name },
      ).done;
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
      assert.deepEqual(await n.linkNames(), ["eth0", "lo"]);
      assert.deepEqual(await v4addrs(n.node.name, "eth0"), ["10.99.0.4/24"]);
      const def = (await routes(n.node.name)).find((x) => x.dst === "default");
      assert.equal(def?.gateway, "10.99.0.1");
      assert.equal(def?.dev, "eth0");
      assert.deepEqual(await n.rules(), []);
      // The Go layout broke the node's own on-link traffic; now it works.
      assert.ok(await n.node.ping("10.99.0.1"), "node -> gw");
    },
  );
});
