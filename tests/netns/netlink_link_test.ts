import { assert } from "../_support/assert.ts";
import { ipJson, TestNetns } from "../_support/netns.ts";
import { requireRoot } from "../_support/privilege.ts";
import { NetlinkHandle } from "@vnet/netlink";

interface IpLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  master?: string;
  linkinfo?: {
    "info_kind"?: string;
    "info_slave_data"?: { hairpin?: boolean };
  };
}

async function showLink(name: string, ns: TestNetns): Promise<IpLink> {
  const [link] = await ipJson<IpLink[]>(["-d", "link", "show", name], ns.name);
  assert.ok(link, `link ${name} not found in ${ns.name}`);
  return link;
}

async function linkNames(ns: TestNetns): Promise<string[]> {
  const links = await ipJson<IpLink[]>(["link", "show"], ns.name);
  return links.map((l) => l.ifname).sort();
}

Deno.test("NetlinkHandle.linkAddVeth() creates the peer in another netns under its final name", async () => {
  requireRoot();
  await using host = await TestNetns.create();
  await using ctr = await TestNetns.create();
  using nl = NetlinkHandle.openNetns(host.path);
  nl.linkAddVeth({
    name: "cnitest-v0",
    peerName: "eth0",
    peerNetns: ctr.path,
    mtu: 1400,
    peerMtu: 1300,
    mac: "02:00:00:aa:00:01",
    peerMac: "02-00-00-AA-00-02",
  });
  const h = await showLink("cnitest-v0", host);
  assert.equal(h.mtu, 1400);
  assert.equal(h.address, "02:00:00:aa:00:01");
  assert.equal(h.linkinfo?.info_kind, "veth");
  const c = await showLink("eth0", ctr);
  assert.equal(c.mtu, 1300);
  assert.equal(c.address, "02:00:00:aa:00:02");
  assert.deepEqual(await linkNames(host), ["cnitest-v0", "lo"]);
  assert.deepEqual(await linkNames(ctr), ["eth0", "lo"]);

  const info = nl.linkByName("cnitest-v0");
  assert.deepEqual(
    { ...info, operState: undefined },
    {
      index: h.ifindex,
      name: "cnitest-v0",
      mac: "02:00:00:aa:00:01",
      mtu: 1400,
      up: false,
      masterIndex: 0,
      peerIndex: c.ifindex,
      type: "veth",
      operState: undefined,
    },
  );
  assert.deepEqual(nl.linkByIndex(h.ifindex).name, "cnitest-v0");
  assert.deepEqual(nl.linkList().map((l) => l.name).sort(), [
    "cnitest-v0",
    "lo",
  ]);

  nl.linkDelSync("cnitest-v0");
  assert.deepEqual(await linkNames(host), ["lo"]);
  assert.deepEqual(
    await linkNames(ctr),
    ["lo"],
    "peer went with the host side",
  );
});

Deno.test("NetlinkHandle.linkDel() (async, off the JS thread) deletes a veth and its peer; an absent link is NotFound", async () => {
  requireRoot();
  await using host = await TestNetns.create();
  await using ctr = await TestNetns.create();
  using nl = NetlinkHandle.openNetns(host.path);
  nl.linkAddVeth({ name: "cnitest-v1", peerName: "eth0", peerNetns: ctr.path });
  const deleting = nl.linkDel("cnitest-v1");
  assert.ok(deleting instanceof Promise);
  await deleting;
  assert.deepEqual(await linkNames(host), ["lo"]);
  assert.deepEqual(
    await linkNames(ctr),
    ["lo"],
    "peer went with the host side",
  );
  await assert.rejects(nl.linkDel("cnitest-v1"), {
    name: "NotFound",
    message: /Cannot delete link "cnitest-v1"/,
  });
  // The handle serves other calls once the deletion settled.
  assert.deepEqual(nl.linkList().map((l) => l.name), ["lo"]);
});

Deno.test("NetlinkHandle link setters change bridge, master, state, mtu, mac, name and hairpin", async (t) => {
  requireRoot();
  await using host = await TestNetns.create();
  using nl = NetlinkHandle.openNetns(host.path);
  nl.linkAddBridge({ name: "cnitest-br", mtu: 1450, mac: "02:00:00:bb:00:01" });
  nl.linkAddVeth({ name: "cnitest-a", peerName: "cnitest-b" });

  await t.step("bridge", async () => {
    const br = await showLink("cnitest-br", host);
    assert.equal(br.linkinfo?.info_kind, "bridge");
    assert.equal(br.address, "02:00:00:bb:00:01");
    assert.equal(nl.linkByName("cnitest-br").type, "bridge");
  });
  await t.step("master and nomaster", async () => {
    nl.linkSetMaster("cnitest-a", "cnitest-br");
    assert.equal((await showLink("cnitest-a", host)).master, "cnitest-br");
    assert.equal(
      nl.linkByName("cnitest-a").masterIndex,
      nl.linkByName("cnitest-br").index,
    );
    nl.linkSetNoMaster("cnitest-a");
    assert.equal((await showLink("cnitest-a", host)).master, undefined);
    assert.equal(nl.linkByName("cnitest-a").masterIndex, 0);
    nl.linkSetMaster("cnitest-a", "cnitest-br");
  });
  await t.step("hairpin on and off", async () => {
    nl.linkSetHairpin("cnitest-a", { on: true });
    let a = await showLink("cnitest-a", host);
    assert.ok(a.linkinfo?.info_slave_data?.hairpin);
    nl.linkSetHairpin("cnitest-a", { on: false });
    a = await showLink("cnitest-a", host);
    assert.ok(a.linkinfo?.info_slave_data?.hairpin === false);
  });
  await t.step("mtu and mac", async () => {
    nl.linkSetMtu("cnitest-b", 1280);
    nl.linkSetMac("cnitest-b", "020000CC0001");
    const b = await showLink("cnitest-b", host);
    assert.equal(b.mtu, 1280);
    assert.equal(b.address, "02:00:00:cc:00:01");
  });
  await t.step("rename then up and down", async () => {
    nl.linkSetName("cnitest-b", "cnitest-c");
    assert.deepEqual(await linkNames(host), [
      "cnitest-a",
      "cnitest-br",
      "cnitest-c",
      "lo",
    ]);
    nl.linkSetUp("cnitest-c");
    assert.ok((await showLink("cnitest-c", host)).flags.includes("UP"));
    assert.ok(nl.linkByName("cnitest-c").up);
    nl.linkSetDown("cnitest-c");
    assert.ok(!(await showLink("cnitest-c", host)).flags.includes("UP"));
    assert.ok(!(nl.linkByName("cnitest-c").up));
  });
  await t.step("delete bridge releases its port", async () => {
    nl.linkDelSync("cnitest-br");
    assert.equal((await showLink("cnitest-a", host)).master, undefined);
  });
});

Deno.test("NetlinkHandle.linkSetNetns() moves a link into another netns", async () => {
  requireRoot();
  await using host = await TestNetns.create();
  await using ctr = await TestNetns.create();
  using nl = NetlinkHandle.openNetns(host.path);
  nl.linkAddVeth({ name: "cnitest-m0", peerName: "cnitest-m1" });
  nl.linkSetNetns("cnitest-m1", ctr.path);
  assert.deepEqual(await linkNames(host), ["cnitest-m0", "lo"]);
  assert.deepEqual(await linkNames(ctr), ["cnitest-m1", "lo"]);
  using inCtr = NetlinkHandle.openNetns(ctr.path);
  assert.equal(inCtr.linkByName("cnitest-m1").type, "veth");
});

Deno.test("NetlinkHandle maps absent and existing objects to Deno error classes", async (t) => {
  requireRoot();
  await using host = await TestNetns.create();
  using nl = NetlinkHandle.openNetns(host.path);
  nl.linkAddBridge({ name: "cnitest-e0" });

  await t.step("missing link is NotFound with a NetlinkError cause", () => {
    assert.throws(() => nl.linkByName("cnitest-none"), {
      name: "NotFound",
      message: /^Cannot find link "cnitest-none": /,
    });
    assert.throws(
      () => nl.linkSetUp("cnitest-none"),
      (e: unknown) => {
        assert.ok(e instanceof Deno.errors.NotFound);
        const cause = e.cause as { name: string; op: string; nlCode: number };
        assert.equal(cause.name, "NetlinkError");
        assert.equal(cause.op, "find link");
        assert.ok([12, 31].includes(cause.nlCode), `code ${cause.nlCode}`);
        return true;
      },
    );
    assert.throws(() => nl.linkDelSync("cnitest-none"), {
      name: "NotFound",
      message: /Cannot delete link "cnitest-none"/,
    });
    assert.throws(() => nl.linkByIndex(999999), { name: "NotFound" });
  });
  await t.step("missing netns path is NotFound", () => {
    assert.throws(
      () => NetlinkHandle.openNetns("/var/run/netns/cnitest-nope"),
      {
        name: "NotFound",
        message: /cnitest-nope/,
      },
    );
    assert.throws(
      () =>
        nl.linkAddVeth({
          name: "cnitest-x0",
          peerName: "eth0",
          peerNetns: "/var/run/netns/cnitest-nope",
        }),
      { name: "NotFound", message: /cnitest-nope/ },
    );
  });
  await t.step("existing link is AlreadyExists", () => {
    assert.throws(() => nl.linkAddBridge({ name: "cnitest-e0" }), {
      name: "AlreadyExists",
      message: /^Cannot add bridge "cnitest-e0": Object exists$/,
    });
    assert.throws(
      () => nl.linkAddVeth({ name: "cnitest-e0", peerName: "cnitest-e1" }),
      { name: "AlreadyExists", message: /Cannot add veth "cnitest-e0"/ },
    );
  });
  await t.step("existing peer name in the target netns is named", async () => {
    await using ctr = await TestNetns.create();
    using inCtr = NetlinkHandle.openNetns(ctr.path);
    inCtr.linkAddBridge({ name: "eth0" });
    assert.throws(
      () =>
        nl.linkAddVeth({
          name: "cnitest-p0",
          peerName: "eth0",
          peerNetns: ctr.path,
        }),
      {
        name: "AlreadyExists",
        message: new RegExp(
          `^Cannot add veth peer "eth0" in netns "${ctr.path}": Object exists$`,
        ),
      },
    );
    assert.deepEqual(await linkNames(host), ["cnitest-e0", "lo"]);
  });
  await t.step("16-byte name is rejected before libnl", async () => {
    assert.throws(() => nl.linkAddBridge({ name: "cnitest-toolong1" }), {
      name: "RangeError",
      message: /16 bytes/,
    });
    assert.throws(() => nl.linkSetName("cnitest-e0", "cnitest-toolong1"), {
      name: "RangeError",
      message: /16 bytes/,
    });
    assert.throws(
      () =>
        nl.linkAddVeth({ name: "cnitest-ok", peerName: "cnitest-toolong1" }),
      { name: "RangeError" },
    );
    // Nothing was created or renamed (libnl would have truncated to 15).
    assert.deepEqual(await linkNames(host), ["cnitest-e0", "lo"]);
  });
  await t.step("closed handle refuses use", () => {
    const h = NetlinkHandle.openNetns(host.path);
    h.close();
    h.close();
    assert.throws(() => h.linkList(), { name: "TypeError", message: /closed/ });
  });
});
