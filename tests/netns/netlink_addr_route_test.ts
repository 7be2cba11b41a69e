import { assert } from "../_support/assert.ts";
import { ip, ipJson, TestNetns } from "../_support/netns.ts";
import { requireRoot } from "../_support/privilege.ts";
import { NetlinkHandle } from "@vnet/netlink";

interface IpAddr {
  ifname: string;
  "addr_info": {
    family: string;
    local: string;
    prefixlen: number;
    scope: string;
  }[];
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  scope?: string;
  protocol?: string;
  metric?: number;
  flags?: string[];
  prefsrc?: string;
  table?: string;
}
interface IpNeigh {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
}

async function addrs(ns: TestNetns, dev: string): Promise<string[]> {
  const [link] = await ipJson<IpAddr[]>(["addr", "show", "dev", dev], ns.name);
  return (link?.addr_info ?? [])
    .filter((a) => a.scope !== "link")
    .map((a) => `${a.local}/${a.prefixlen}`)
    .sort();
}

/** A netns with a veth `cnitest-r0` (up, 10.50.0.2/24) and a handle on it. */
async function setup(): Promise<{ ns: TestNetns; nl: NetlinkHandle }> {
  requireRoot();
  const ns = await TestNetns.create();
  const nl = NetlinkHandle.openNetns(ns.path);
  nl.linkAddVeth({ name: "cnitest-r0", peerName: "cnitest-r1" });
  nl.linkSetUp("cnitest-r0");
  nl.linkSetUp("cnitest-r1");
  nl.addrAdd("cnitest-r0", "10.50.0.2/24");
  return { ns, nl };
}

Deno.test("NetlinkHandle.addrAdd() and addrDel() manage IPv4 and IPv6 addresses", async () => {
  requireRoot();
  await using ns = await TestNetns.create();
  using nl = NetlinkHandle.openNetns(ns.path);
  nl.linkAddBridge({ name: "cnitest-a0" });
  nl.addrAdd("cnitest-a0", "10.60.0.5/16");
  nl.addrAdd("cnitest-a0", "10.61.0.1/32");
  nl.addrAdd("cnitest-a0", "fd00:60::5/64");
  assert.deepEqual(await addrs(ns, "cnitest-a0"), [
    "10.60.0.5/16",
    "10.61.0.1/32",
    "fd00:60::5/64",
  ]);
  const listed = nl.addrList({ link: "cnitest-a0" });
  assert.deepEqual(
    listed.map((a) => a.cidr).sort(),
    ["10.60.0.5/16", "10.61.0.1/32", "fd00:60::5/64"],
  );
  const v4 = listed.find((a) => a.cidr === "10.60.0.5/16");
  assert.deepEqual(v4, {
    link: "cnitest-a0",
    index: nl.linkByName("cnitest-a0").index,
    cidr: "10.60.0.5/16",
    family: 4,
    scope: "global",
  });
  assert.deepEqual(
    nl.addrList({ link: "cnitest-a0", family: 6 }).map((a) => a.cidr),
    [
      "fd00:60::5/64",
    ],
  );
  assert.ok(
    nl.addrList({ family: 4 }).some((a) =>
      a.cidr === "127.0.0.1/8" && a.scope === "host" && a.link === "lo"
    ),
  );

  assert.throws(() => nl.addrAdd("cnitest-a0", "10.60.0.5/16"), {
    name: "AlreadyExists",
    message: /Cannot add address "10.60.0.5\/16 dev cnitest-a0"/,
  });
  assert.throws(() => nl.addrAdd("cnitest-a0", "10.60.0.300/16"), {
    name: "SyntaxError",
  });
  assert.throws(() => nl.addrAdd("cnitest-none", "10.1.0.1/16"), {
    name: "NotFound",
  });

  nl.addrDel("cnitest-a0", "10.60.0.5/16");
  nl.addrDel("cnitest-a0", "fd00:60::5/64");
  assert.deepEqual(await addrs(ns, "cnitest-a0"), ["10.61.0.1/32"]);
  assert.throws(() => nl.addrDel("cnitest-a0", "10.60.0.5/16"), {
    name: "NotFound",
    message: /Cannot delete address/,
  });
});

Deno.test("NetlinkHandle route verbs add, replace, list and delete routes", async (t) => {
  const { ns, nl } = await setup();
  await using _ns = ns;
  using _nl = nl;

  await t.step("default via gateway", async () => {
    nl.routeAdd({ dst: "default", gw: "10.50.0.1", link: "cnitest-r0" });
    const [r] = await ipJson<IpRoute[]>(["route", "show", "default"], ns.name);
    assert.equal(r?.gateway, "10.50.0.1");
    assert.equal(r?.dev, "cnitest-r0");
    const mine = nl.routeList({ family: 4 }).find((x) => x.dst === "default");
    assert.deepEqual(mine, {
      dst: "default",
      gw: "10.50.0.1",
      link: "cnitest-r0",
      index: nl.linkByName("cnitest-r0").index,
      table: 254,
      scope: "global",
      protocol: "static",
      family: 4,
    });
    assert.throws(
      () =>
        nl.routeAdd({ dst: "default", gw: "10.50.0.1", link: "cnitest-r0" }),
      {
        name: "AlreadyExists",
        message: /Cannot add route "default via 10.50.0.1/,
      },
    );
  });
  await t.step("replace the default route", async () => {
    nl.routeReplace({ dst: "default", gw: "10.50.0.254", link: "cnitest-r0" });
    const routes = await ipJson<IpRoute[]>(
      ["route", "show", "default"],
      ns.name,
    );
    assert.deepEqual(routes.map((r) => r.gateway), ["10.50.0.254"]);
  });
  await t.step("host route with scope link and src", async () => {
    nl.routeAdd({
      dst: "10.70.0.9/32",
      link: "cnitest-r0",
      scope: "link",
      src: "10.50.0.2",
      metric: 7,
    });
    const [r] = await ipJson<IpRoute[]>(
      ["route", "show", "10.70.0.9"],
      ns.name,
    );
    assert.equal(r?.scope, "link");
    assert.equal(r?.prefsrc, "10.50.0.2");
    assert.equal(r?.metric, 7);
    const mine = nl.routeList({ link: "cnitest-r0" }).find((x) =>
      x.dst === "10.70.0.9/32"
    );
    assert.equal(mine?.scope, "link");
    assert.equal(mine?.src, "10.50.0.2");
    assert.equal(mine?.metric, 7);
    assert.equal(mine?.link, "cnitest-r0");
    assert.equal(
      nl.routeList().find((x) => x.dst === "10.70.0.9/32")?.link,
      "cnitest-r0",
    );
  });
  await t.step("onlink gateway outside the subnet", async () => {
    nl.routeAdd({
      dst: "10.80.0.0/16",
      gw: "10.99.0.1",
      link: "cnitest-r0",
      onlink: true,
    });
    const [r] = await ipJson<IpRoute[]>(
      ["route", "show", "10.80.0.0/16"],
      ns.name,
    );
    assert.equal(r?.gateway, "10.99.0.1");
    assert.ok(r?.flags?.includes("onlink"));
    assert.ok(nl.routeList().find((x) => x.dst === "10.80.0.0/16")?.onlink);
  });
  await t.step("other table and IPv6", async () => {
    nl.routeAdd({ dst: "10.90.0.0/24", link: "cnitest-r0", table: 100 });
    const routes = await ipJson<IpRoute[]>(
      ["route", "show", "table", "100"],
      ns.name,
    );
    assert.deepEqual(routes.map((r) => r.dst), ["10.90.0.0/24"]);
    assert.deepEqual(nl.routeList({ table: 100 }).map((r) => r.dst), [
      "10.90.0.0/24",
    ]);
    assert.ok(!nl.routeList().some((r) => r.dst === "10.90.0.0/24"));
    assert.ok(nl.routeList({ table: 0 }).some((r) => r.dst === "10.90.0.0/24"));
    nl.addrAdd("cnitest-r0", "fd00:50::2/64");
    nl.routeAdd({
      dst: "fd00:99::/64",
      gw: "fd00:50::1",
      link: "cnitest-r0",
      metric: 5,
    });
    const [r6] = await ipJson<IpRoute[]>([
      "-6",
      "route",
      "show",
      "fd00:99::/64",
    ], ns.name);
    assert.equal(r6?.gateway, "fd00:50::1");
    const mine = nl.routeList({ family: 6 }).find((r) =>
      r.dst === "fd00:99::/64"
    );
    assert.equal(mine?.gw, "fd00:50::1");
    assert.equal(mine?.family, 6);
  });
  await t.step("delete", async () => {
    nl.routeDel({ dst: "10.70.0.9/32" });
    nl.routeDel({ dst: "10.90.0.0/24", table: 100 });
    nl.routeDel({ dst: "fd00:99::/64" });
    nl.routeDel({ dst: "default", gw: "10.50.0.254" });
    assert.equal(
      (await ip(["route", "show", "10.70.0.9"], ns.name)).trim(),
      "",
    );
    assert.equal((await ip(["route", "show", "default"], ns.name)).trim(), "");
    assert.deepEqual(
      await ipJson(["route", "show", "table", "100"], ns.name),
      [],
    );
    assert.throws(() => nl.routeDel({ dst: "10.70.0.9/32" }), {
      name: "NotFound",
      message: /Cannot delete route "10.70.0.9\/32"/,
    });
  });
  await t.step("a route deleted regardless of protocol", async () => {
    await ip(["route", "add", "10.95.0.0/24", "dev", "cnitest-r0"], ns.name);
    nl.routeDel({ dst: "10.95.0.0/24", link: "cnitest-r0" });
    assert.equal(
      (await ip(["route", "show", "10.95.0.0/24"], ns.name)).trim(),
      "",
    );
  });
  await t.step("bad specs are refused before libnl", () => {
    assert.throws(() => nl.routeAdd({ dst: "10.0.0.0/33" }), {
      name: "RangeError",
    });
    assert.throws(
      () => nl.routeAdd({ dst: "default", gw: "fd00::1", src: "10.0.0.1" }),
      {
        name: "TypeError",
        message: /mixed address families/,
      },
    );
    assert.throws(
      () =>
        nl.routeAdd({
          dst: "default",
          gw: "10.0.0.1",
          scope: "bogus" as "link",
        }),
      {
        name: "RangeError",
      },
    );
  });
});

Deno.test("NetlinkHandle neighbour verbs manage permanent entries", async () => {
  const { ns, nl } = await setup();
  await using _ns = ns;
  using _nl = nl;
  const show = () =>
    ipJson<IpNeigh[]>(["neigh", "show", "dev", "cnitest-r0"], ns.name);

  nl.neighAdd({
    link: "cnitest-r0",
    ip: "10.50.0.7",
    mac: "02:00:00:dd:00:07",
  });
  let entries = await show();
  assert.deepEqual(entries.map((e) => [e.dst, e.lladdr, e.state]), [
    ["10.50.0.7", "02:00:00:dd:00:07", ["PERMANENT"]],
  ]);
  assert.throws(
    () =>
      nl.neighAdd({
        link: "cnitest-r0",
        ip: "10.50.0.7",
        mac: "02:00:00:dd:00:08",
      }),
    {
      name: "AlreadyExists",
      message: /Cannot add neighbour "10.50.0.7 dev cnitest-r0"/,
    },
  );
  nl.neighSet({
    link: "cnitest-r0",
    ip: "10.50.0.7",
    mac: "02:00:00:dd:00:08",
  });
  nl.neighSet({
    link: "cnitest-r0",
    ip: "fd00:50::7",
    mac: "02:00:00:dd:00:09",
  });
  entries = await show();
  assert.deepEqual(
    entries.map((e) => [e.dst, e.lladdr]).sort(),
    [["10.50.0.7", "02:00:00:dd:00:08"], ["fd00:50::7", "02:00:00:dd:00:09"]],
  );
  const listed = nl.neighList({ link: "cnitest-r0" }).filter((n) =>
    n.state.includes("permanent")
  );
  assert.deepEqual(listed.map((n) => [n.ip, n.mac, n.family]).sort(), [
    ["10.50.0.7", "02:00:00:dd:00:08", 4],
    ["fd00:50::7", "02:00:00:dd:00:09", 6],
  ]);
  // Filtered or not, each entry names its link.
  const all = nl.neighList().filter((n) => n.state.includes("permanent"));
  for (const n of [...listed, ...all]) {
    assert.equal(n.link, "cnitest-r0");
    assert.equal(n.index, nl.linkByName("cnitest-r0").index);
  }
  assert.equal(all.length, 2);
  nl.neighDel({ link: "cnitest-r0", ip: "10.50.0.7" });
  nl.neighDel({ link: "cnitest-r0", ip: "fd00:50::7" });
  assert.deepEqual(
    (await show()).filter((e) => e.state?.includes("PERMANENT")),
    [],
  );
  assert.throws(() => nl.neighDel({ link: "cnitest-r0", ip: "10.50.0.7" }), {
    name: "NotFound",
    message: /Cannot delete neighbour/,
  });
});
