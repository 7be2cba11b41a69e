/**
 * `NetlinkHandle.addrAdd()` with `nodad` against the real kernel: in a
 * netns whose `all.accept_dad` is 1 (the device's own 0 then does not stop
 * DAD), a `nodad` address is never tentative while a plain one is.
 */
import { assert } from "../_support/assert.ts";
import { ip, ipJson, TestNetns } from "../_support/netns.ts";
import { requireRoot } from "../_support/privilege.ts";
import { NetlinkHandle } from "@vnet/netlink";

interface IpAddr {
  "addr_info": { local: string; tentative?: boolean; nodad?: boolean }[];
}

Deno.test("NetlinkHandle.addrAdd() with nodad adds an IPv6 address the kernel never marks tentative", async () => {
  requireRoot();
  await using ns = await TestNetns.create();
  await ns.exec("sysctl", ["-qw", "net.ipv6.conf.all.accept_dad=1"]);
  using nl = NetlinkHandle.openNetns(ns.path);
  nl.linkAddVeth({ name: "cnitest-d0", peerName: "cnitest-d1" });
  nl.linkSetUp("cnitest-d0");
  nl.linkSetUp("cnitest-d1");
  await ns.exec("sysctl", ["-qw", "net.ipv6.conf.cnitest-d0.accept_dad=0"]);
  nl.addrAdd("cnitest-d0", "fd00:70::5/64", { nodad: true });
  nl.addrAdd("cnitest-d0", "fe80::5/64", { nodad: true });
  nl.addrAdd("cnitest-d0", "fd00:70::6/64");
  const [link] = await ipJson<IpAddr[]>(
    ["-6", "addr", "show", "dev", "cnitest-d0"],
    ns.name,
  );
  const info = new Map((link?.addr_info ?? []).map((a) => [a.local, a]));
  for (const a of ["fd00:70::5", "fe80::5"]) {
    assert.ok(info.get(a)?.nodad === true, `${a} is nodad`);
    assert.equal(info.get(a)?.tentative, undefined, `${a} is not tentative`);
  }
  assert.ok(info.get("fd00:70::6")?.tentative === true, "DAD runs without");
  const waiting = await ip(["-6", "addr", "show", "tentative"], ns.name);
  assert.doesNotMatch(waiting, /fd00:70::5|fe80::5\//);
});
