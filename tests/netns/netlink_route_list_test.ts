import { assert } from "../_support/assert.ts";
import { ip, ipJson, TestNetns } from "../_support/netns.ts";
import { requireRoot } from "../_support/privilege.ts";
import { NetlinkHandle, type RouteInfo } from "@vnet/netlink";

interface IpNexthop {
  gateway?: string;
  dev: string;
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  nexthops?: IpNexthop[];
}

/** `[dst, gw, link]` of each entry, sorted, for comparing with `ip`. */
function hops(routes: readonly RouteInfo[]): string[][] {
  return routes.map((r) => [r.dst, r.gw ?? "", r.link ?? ""]).sort();
}

/** The same triples from `ip -j route show`, one per nexthop. */
function ipHops(routes: readonly IpRoute[]): string[][] {
  return routes.flatMap((r) =>
    (r.nexthops ?? [{ gateway: r.gateway, dev: r.dev ?? "" }]).map((
      nh,
    ) => [r.dst, nh.gateway ?? "", nh.dev])
  ).sort();
}

/** Two veth pairs in one netns, `cnitest-la` and `cnitest-lb` up. */
async function twoLinks(): Promise<{ ns: TestNetns; nl: NetlinkHandle }> {
  requireRoot();
  const ns = await TestNetns.create();
  const nl = NetlinkHandle.openNetns(ns.path);
  for (const side of ["a", "b"]) {
    nl.linkAddVeth({ name: `cnitest-l${side}`, peerName: `cnitest-p${side}` });
    nl.linkSetUp(`cnitest-l${side}`);
    nl.linkSetUp(`cnitest-p${side}`);
  }
  return { ns, nl };
}

Deno.test("NetlinkHandle.routeList() lists routes that differ only in their link", async () => {
  const { ns, nl } = await twoLinks();
  await using _ns = ns;
  using _nl = nl;
  for (const dst of ["10.88.0.0/24", "fd88::/64"]) {
    for (const dev of ["cnitest-la", "cnitest-lb"]) {
      await ip(["route", "append", dst, "dev", dev], ns.name);
    }
  }
  for (const dst of ["10.88.0.0/24", "fd88::/64"]) {
    const want = [[dst, "", "cnitest-la"], [dst, "", "cnitest-lb"]];
    assert.deepEqual(
      ipHops(
        await ipJson<IpRoute[]>(
          [dst.includes(":") ? "-6" : "-4", "route", "show", dst],
          ns.name,
        ),
      ),
      want,
    );
    assert.deepEqual(hops(nl.routeList().filter((r) => r.dst === dst)), want);
    assert.deepEqual(
      hops(nl.routeList({ link: "cnitest-lb" }).filter((r) => r.dst === dst)),
      [[dst, "", "cnitest-lb"]],
    );
    assert.deepEqual(
      hops(
        nl.routeList({ table: 0, link: "cnitest-la" }).filter((r) =>
          r.dst === dst
        ),
      ),
      [[dst, "", "cnitest-la"]],
    );
  }
});

Deno.test("NetlinkHandle.routeList() gives one entry per nexthop of a multipath route", async () => {
  const { ns, nl } = await twoLinks();
  await using _ns = ns;
  using _nl = nl;
  for (
    const [dev, v4, v6] of [["cnitest-la", "50", "50"], [
      "cnitest-lb",
      "51",
      "51",
    ]]
  ) {
    await ip(["addr", "add", `10.${v4}.0.2/24`, "dev", dev ?? ""], ns.name);
    await ip(
      ["addr", "add", `fd${v6}::2/64`, "dev", dev ?? "", "nodad"],
      ns.name,
    );
  }
  await ip([
    "route",
    "add",
    "10.77.0.0/24",
    "metric",
    "9",
    "nexthop",
    "via",
    "10.50.0.1",
    "dev",
    "cnitest-la",
    "nexthop",
    "via",
    "10.51.0.1",
    "dev",
    "cnitest-lb",
    "onlink",
  ], ns.name);
  await ip([
    "-6",
    "route",
    "add",
    "fd77::/64",
    "nexthop",
    "via",
    "fd50::1",
    "dev",
    "cnitest-la",
    "nexthop",
    "via",
    "fd51::1",
    "dev",
    "cnitest-lb",
  ], ns.name);
  const index = (name: string) => nl.linkByName(name).index;
  for (
    const [dst, family, gwA, gwB] of [
      ["10.77.0.0/24", 4, "10.50.0.1", "10.51.0.1"],
      ["fd77::/64", 6, "fd50::1", "fd51::1"],
    ] as const
  ) {
    const want = [[dst, gwA, "cnitest-la"], [dst, gwB, "cnitest-lb"]];
    const shown = await ipJson<IpRoute[]>(
      [family === 4 ? "-4" : "-6", "route", "show", dst],
      ns.name,
    );
    assert.deepEqual(ipHops(shown), want);
    const listed = nl.routeList({ family }).filter((r) => r.dst === dst);
    assert.deepEqual(hops(listed), want);
    for (const r of listed) {
      assert.equal(r.index, index(r.link ?? ""));
      assert.equal(r.table, 254);
      assert.equal(r.family, family);
    }
    const onB = nl.routeList({ link: "cnitest-lb" }).filter((r) =>
      r.dst === dst
    );
    assert.deepEqual(hops(onB), [[dst, gwB, "cnitest-lb"]]);
    if (family === 4) {
      // Each entry carries its own nexthop's flags, the route's metric.
      assert.deepEqual(
        listed.map((r) => [r.link, r.onlink ?? false, r.metric]).sort(),
        [["cnitest-la", false, 9], ["cnitest-lb", true, 9]],
      );
    }
  }
});

Deno.test("NetlinkHandle.routeList() lists the fe80::/64 route of each of 40 veths", async () => {
  requireRoot();
  await using ns = await TestNetns.create();
  await using peers = await TestNetns.create();
  using nl = NetlinkHandle.openNetns(ns.path);
  using peerNl = NetlinkHandle.openNetns(peers.path);
  const names = Array.from({ length: 40 }, (_, i) => `cnitest-v${i}`);
  for (const name of names) {
    nl.linkAddVeth({ name, peerName: name, peerNetns: peers.path });
    peerNl.linkSetUp(name);
    nl.linkSetUp(name);
  }
  const shown = async () =>
    (await ipJson<IpRoute[]>(["-6", "route", "show", "fe80::/64"], ns.name))
      .map((r) => r.dev ?? "").sort();
  for (let i = 0; i < 50 && (await shown()).length < names.length; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const want = [...names].sort();
  assert.deepEqual(await shown(), want);
  const listed = nl.routeList({ family: 6 }).filter((r) =>
    r.dst === "fe80::/64"
  );
  assert.deepEqual(listed.map((r) => r.link ?? "").sort(), want);
  for (const name of ["cnitest-v0", "cnitest-v17", "cnitest-v39"]) {
    assert.deepEqual(
      nl.routeList({ link: name }).filter((r) => r.dst === "fe80::/64")
        .map((r) => r.link),
      [name],
    );
  }
});
