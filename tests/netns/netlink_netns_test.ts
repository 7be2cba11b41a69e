import { assert } from "../_support/assert.ts";
import { ip, ipJson, run, TestNetns, testPrefix } from "../_support/netns.ts";
import { requireRoot } from "../_support/privilege.ts";
import {
  NetlinkHandle,
  netnsAdd,
  netnsDel,
  sysctlGet,
  sysctlSet,
  withNetns,
} from "@vnet/netlink";

function selfNetnsInode(): string {
  return Deno.readLinkSync("/proc/thread-self/ns/net");
}

Deno.test("netnsAdd() and netnsDel() manage named namespaces like ip netns", async () => {
  requireRoot();
  const name = testPrefix();
  const before = selfNetnsInode();
  const path = netnsAdd(name);
  try {
    assert.equal(path, `/var/run/netns/${name}`);
    assert.equal(selfNetnsInode(), before, "JS thread is back home");
    const list = await run("ip", ["netns", "list"]);
    assert.match(list, new RegExp(`^${name}\\b`, "m"));
    // A fresh namespace: only lo, down, and a handle works there.
    const links = await ipJson<{ ifname: string }[]>(["link", "show"], name);
    assert.deepEqual(links.map((l) => l.ifname), ["lo"]);
    using nl = NetlinkHandle.openNetns(path);
    nl.linkSetUp("lo");
    assert.ok(nl.linkByName("lo").up);
    assert.throws(() => netnsAdd(name), {
      name: "AlreadyExists",
      message: /already exists/,
    });
  } finally {
    netnsDel(name);
  }
  assert.doesNotMatch(await run("ip", ["netns", "list"]), new RegExp(name));
  assert.throws(() => netnsDel(name), { name: "NotFound" });
  assert.throws(() => netnsAdd("a/b"), { name: "RangeError" });
});

Deno.test("withNetns() runs a sync callback inside the namespace and restores", async (t) => {
  requireRoot();
  await using ns = await TestNetns.create();
  await ip(["link", "add", "cnitest-w0", "type", "bridge"], ns.name);
  const home = selfNetnsInode();
  const inside = withNetns(ns.path, () => ({
    inode: selfNetnsInode(),
    dev: Deno.readTextFileSync("/proc/thread-self/net/dev"),
  }));
  assert.notEqual(inside.inode, home);
  assert.match(inside.dev, /cnitest-w0/);
  assert.equal(selfNetnsInode(), home);

  await t.step("restores after a throwing callback", () => {
    assert.throws(
      () =>
        withNetns(ns.path, () => {
          throw new RangeError("boom");
        }),
      { name: "RangeError", message: "boom" },
    );
    assert.equal(selfNetnsInode(), home);
  });
  await t.step("refuses an async callback", () => {
    assert.throws(
      // deno-lint-ignore require-await
      () => withNetns(ns.path, (async () => 1) as unknown as () => number),
      { name: "TypeError", message: /sync only/ },
    );
    assert.equal(selfNetnsInode(), home);
  });
  await t.step("missing path is NotFound", () => {
    assert.throws(() => withNetns("/var/run/netns/cnitest-absent", () => 1), {
      name: "NotFound",
      message: /cnitest-absent/,
    });
    assert.throws(() => withNetns("/proc/999999999/ns/net", () => 1), {
      name: "NotFound",
    });
  });
});

Deno.test("sysctlGet() and sysctlSet() reach per-namespace sysctls", async (t) => {
  requireRoot();
  await using ns = await TestNetns.create();
  await ip(["link", "add", "cnitest-s0", "type", "bridge"], ns.name);
  const read = async (key: string) =>
    (await ns.exec("sysctl", ["-n", key])).trim();
  const cases: [string, string][] = [
    ["net.ipv4.conf.cnitest-s0.proxy_arp", "1"],
    ["net.ipv6.conf.cnitest-s0.accept_ra", "0"],
    ["net.ipv4.ip_forward", "1"],
    ["net.ipv4.conf.all.forwarding", "1"],
  ];
  const rootForward = sysctlGet(undefined, "net.ipv4.ip_forward");
  for (const [key, value] of cases) {
    await t.step(key, async () => {
      assert.equal(sysctlGet(ns.path, key), await read(key));
      sysctlSet(ns.path, key, value);
      assert.equal(await read(key), value);
      assert.equal(sysctlGet(ns.path, key), value);
    });
  }
  await t.step("the calling namespace is untouched", () => {
    assert.equal(sysctlGet(undefined, "net.ipv4.ip_forward"), rootForward);
    assert.throws(
      () => sysctlGet(undefined, "net.ipv4.conf.cnitest-s0.proxy_arp"),
      {
        name: "NotFound",
        message:
          /^Cannot read sysctl "net.ipv4.conf.cnitest-s0.proxy_arp": No such file/,
      },
    );
  });
  await t.step("slash form for names with dots", () => {
    assert.equal(sysctlGet(ns.path, "net/ipv4/conf/cnitest-s0/proxy_arp"), "1");
  });
  await t.step("bad keys and paths", () => {
    assert.throws(() => sysctlGet(ns.path, "net.ipv4.conf.nope0.proxy_arp"), {
      name: "NotFound",
    });
    assert.throws(() => sysctlGet(ns.path, "net/../../etc/passwd"), {
      name: "RangeError",
    });
    assert.throws(
      () => sysctlSet("/var/run/netns/cnitest-x", "net.ipv4.ip_forward", "1"),
      {
        name: "NotFound",
      },
    );
  });
});

Deno.test({
  name: "NetlinkHandle, withNetns() and sysctl verbs need only --allow-ffi",
  // Proves the plugins' scoped permissions suffice: Deno itself refuses
  // /proc/sys to anything short of --allow-all.
  permissions: {
    ffi: true,
    sys: ["uid"], // requireRoot() only
    read: false,
    write: false,
    env: false,
    run: false,
  },
  fn() {
    requireRoot();
    using nl = NetlinkHandle.open();
    assert.equal(nl.linkByName("lo").name, "lo");
    const key = "net.ipv4.conf.lo.proxy_arp";
    const before = sysctlGet(undefined, key);
    const inside = withNetns(
      "/proc/self/ns/net",
      () => sysctlGet(undefined, key),
    );
    assert.equal(inside, before);
    sysctlSet(undefined, key, before);
    using other = NetlinkHandle.openNetns("/proc/self/ns/net");
    assert.ok(other.linkList().some((l) => l.name === "lo"));
  },
});
