import assert from "node:assert/strict";
import { parseCniArgs } from "@vnet/cni";
import { FakeStore } from "./_fake_store.ts";
import { allocate, release } from "./allocator.ts";
import { podOf } from "./cni_request.ts";
import { ipamConfig } from "./_testing.ts";
import { IpamEngine } from "./engine.ts";
import { parseIpamState } from "./state.ts";
import type { IpamState } from "./state.ts";

function conf(ipam: Record<string, unknown>) {
  return ipamConfig({
    environment: "static",
    subnet: "10.0.0.0/24",
    addresses: ["10.0.0.5", "10.0.0.6", "10.0.0.7"],
    ...ipam,
  });
}

function key(id: string) {
  return { containerId: id, ifName: "eth0" };
}

/** An engine over a fake store with a clock the test moves. */
function clockedEngine(): { engine: IpamEngine; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const engine = new IpamEngine({
    store: new FakeStore(),
    hostMacs: () => [],
    now: () => clock.now,
    bootId: () => "b",
  });
  return { engine, clock };
}

Deno.test("parseIpamConfig() reads sticky and its cooldown", async (t) => {
  await t.step("off by default", () => {
    assert.equal(conf({}).sticky, undefined);
  });
  await t.step("default cooldown 300 s", () => {
    assert.deepEqual(conf({ sticky: true }).sticky, { cooldownMs: 300_000 });
  });
  await t.step("cooldown in seconds, string or number", () => {
    assert.deepEqual(conf({ sticky: true, stickyCooldown: "60" }).sticky, {
      cooldownMs: 60_000,
    });
    assert.deepEqual(conf({ sticky: true, stickyCooldown: 1.5 }).sticky, {
      cooldownMs: 1_500,
    });
  });
  await t.step("a bad cooldown is code 7", () => {
    assert.throws(() => conf({ sticky: true, stickyCooldown: "-1" }), {
      name: "CniError",
      code: 7,
      message: /ipam\.stickyCooldown.*seconds >= 0/,
    });
    assert.throws(() => conf({ sticky: "yes" }), {
      name: "CniError",
      code: 7,
      message: /sticky/,
    });
  });
});

Deno.test("podOf() is namespace/name from CNI_ARGS", () => {
  assert.equal(
    podOf({ args: parseCniArgs("K8S_POD_NAMESPACE=db;K8S_POD_NAME=pg-0") }),
    "db/pg-0",
  );
  assert.equal(podOf({ args: parseCniArgs("K8S_POD_NAME=x") }), "/x");
  assert.equal(
    podOf({ args: parseCniArgs("K8S_POD_NAMESPACE=db") }),
    undefined,
  );
});

Deno.test("IpamEngine.reserve() with sticky gives a pod back its address", async (t) => {
  const config = conf({ sticky: true, stickyCooldown: 60 });
  const { engine, clock } = clockedEngine();
  const network = "azure";
  const pg = "db/pg-0";

  await t.step("the same pod gets the same address again", async () => {
    await engine.reserve(key("a"), { config, network, pod: "x/a" });
    const first = await engine.reserve(key("p1"), { config, network, pod: pg });
    assert.equal(first.ip, "10.0.0.6");
    clock.now += 1000;
    assert.deepEqual(await engine.release(key("p1"), { network }), [
      "10.0.0.6",
    ]);
    clock.now += 10_000;
    const again = await engine.reserve(key("p2"), { config, network, pod: pg });
    assert.equal(again.ip, "10.0.0.6");
  });

  await t.step("other pods skip a remembered address", async () => {
    await engine.release(key("p2"), { network });
    clock.now += 1000;
    const other = await engine.reserve(key("o1"), {
      config,
      network,
      pod: "web/w-1",
    });
    assert.equal(other.ip, "10.0.0.7");
  });

  await t.step("and get it when nothing else is free", async () => {
    const last = await engine.reserve(key("o2"), {
      config,
      network,
      pod: "web/w-2",
    });
    assert.equal(last.ip, "10.0.0.6");
    await assert.rejects(
      engine.reserve(key("o3"), { config, network, pod: "web/w-3" }),
      { name: "CniError", code: 100 },
    );
  });
});

Deno.test("IpamEngine.reserve() with sticky forgets after the cooldown", async () => {
  const config = conf({ sticky: true, stickyCooldown: 60 });
  const { engine, clock } = clockedEngine();
  const network = "azure";
  const a = await engine.reserve(key("p1"), { config, network, pod: "n/a" });
  assert.equal(a.ip, "10.0.0.5");
  await engine.release(key("p1"), { network });
  clock.now += 59_999;
  assert.equal(
    (await engine.reserve(key("o1"), { config, network, pod: "n/b" })).ip,
    "10.0.0.6",
  );
  await engine.release(key("o1"), { network });
  clock.now += 1;
  // 10.0.0.5's cooldown is over; 10.0.0.6 is b's for 60 s more.
  assert.equal(
    (await engine.reserve(key("o2"), { config, network, pod: "n/c" })).ip,
    "10.0.0.5",
  );
});

Deno.test("IpamEngine.reserve() without sticky ignores the memory", async () => {
  const { engine } = clockedEngine();
  const sticky = conf({ sticky: true });
  const plain = conf({});
  const network = "azure";
  await engine.reserve(key("p1"), { config: sticky, network, pod: "n/a" });
  await engine.release(key("p1"), { network });
  const b = await engine.reserve(key("p2"), {
    config: plain,
    network,
    pod: "n/b",
  });
  assert.equal(b.ip, "10.0.0.5");
});

Deno.test("IpamEngine.reserve() honours a requested address remembered for another pod", async () => {
  const { engine } = clockedEngine();
  const config = conf({ sticky: true });
  const network = "azure";
  await engine.reserve(key("p1"), { config, network, pod: "n/a" });
  await engine.release(key("p1"), { network });
  const b = await engine.reserve(key("p2"), {
    config,
    network,
    pod: "n/b",
    requestedIp: "10.0.0.5",
  });
  assert.equal(b.ip, "10.0.0.5");
});

function state(addresses: IpamState["pools"][string]["addresses"]): IpamState {
  return {
    version: 1,
    lastRefresh: 0,
    bootId: "",
    pools: {
      "10.1.0.0/24": {
        subnet: "10.1.0.0/24",
        gateway: "10.1.0.1",
        macAddress: "*",
        priority: 0,
        primaryIps: [],
        addresses,
      },
    },
  };
}

Deno.test("allocate() with sticky is deterministic", async (t) => {
  const sticky = { cooldownMs: 100, now: 1000 };
  await t.step("a pod takes its most recently released address", () => {
    const s = state({
      "10.1.0.5": { lastPod: "n/a", releasedAt: 950 },
      "10.1.0.6": { lastPod: "n/a", releasedAt: 990 },
      "10.1.0.7": {},
    });
    const got = allocate(s, { ...key("c"), pod: "n/a", sticky });
    assert.equal(got.ip, "10.1.0.6");
    assert.deepEqual(s.pools["10.1.0.0/24"]?.addresses["10.1.0.6"], {
      ...key("c"),
      pod: "n/a",
    });
  });
  await t.step("a stranger, nothing else free: the earliest release", () => {
    const s = state({
      "10.1.0.5": { lastPod: "n/a", releasedAt: 980 },
      "10.1.0.6": { lastPod: "n/b", releasedAt: 950 },
      "10.1.0.7": { containerId: "x", ifName: "eth0" },
    });
    assert.equal(
      allocate(s, { ...key("c"), pod: "n/z", sticky }).ip,
      "10.1.0.6",
    );
  });
  await t.step("no pod identity: still avoids remembered addresses", () => {
    const s = state({
      "10.1.0.5": { lastPod: "n/a", releasedAt: 980 },
      "10.1.0.6": {},
    });
    assert.equal(allocate(s, { ...key("c"), sticky }).ip, "10.1.0.6");
    assert.deepEqual(s.pools["10.1.0.0/24"]?.addresses["10.1.0.6"], key("c"));
  });
});

Deno.test("release() remembers the pod only for a sticky reservation", () => {
  const s = state({
    "10.1.0.5": { ...key("a"), pod: "n/a" },
    "10.1.0.6": key("b"),
    "10.1.0.7": { ...key("c"), pod: "n/c", stale: true },
  });
  release(s, key("a"), { now: 42 });
  release(s, key("b"), { now: 42 });
  release(s, key("c"), { now: 42 });
  assert.deepEqual(s.pools["10.1.0.0/24"]?.addresses, {
    "10.1.0.5": { lastPod: "n/a", releasedAt: 42 },
    "10.1.0.6": {},
  });
});

Deno.test("parseIpamState() reads files with and without the sticky fields", () => {
  const old = parseIpamState(
    { version: 1, lastRefresh: 0, bootId: "b", pools: {} },
    "/x",
  );
  assert.equal(old?.version, 1);
  const doc = state({
    "10.1.0.5": { lastPod: "n/a", releasedAt: 5 },
    "10.1.0.6": { ...key("b"), pod: "n/b" },
  });
  assert.deepEqual(
    parseIpamState(JSON.parse(JSON.stringify(doc)), "/x"),
    doc,
  );
});

Deno.test("IpamEngine.reserve() with sticky keeps a dual-stack pod's IPv6 address too", async (t) => {
  const config = conf({
    sticky: true,
    stickyCooldown: 60,
    ipv6Subnet: "fd00:db8::/64",
    ipv6Addresses: ["fd00:db8::5", "fd00:db8::6", "fd00:db8::7"],
  });
  const { engine, clock } = clockedEngine();
  const network = "azure";
  const both = (r: { ip: string; ipv6?: { ip: string } | undefined }) => [
    r.ip,
    r.ipv6?.ip,
  ];

  await t.step("another pod skips both remembered addresses", async () => {
    const web = await engine.reserve(key("w1"), {
      config,
      network,
      pod: "web/web-0",
    });
    assert.deepEqual(both(web), ["10.0.0.5", "fd00:db8::5"]);
    clock.now += 1000;
    await engine.release(key("w1"), { network });
    clock.now += 1000;
    const other = await engine.reserve(key("o1"), {
      config,
      network,
      pod: "x/other",
    });
    assert.deepEqual(both(other), ["10.0.0.6", "fd00:db8::6"]);
  });

  await t.step("and the pod gets both back", async () => {
    const again = await engine.reserve(key("w2"), {
      config,
      network,
      pod: "web/web-0",
    });
    assert.deepEqual(both(again), ["10.0.0.5", "fd00:db8::5"]);
  });
});

Deno.test("IpamEngine.reserve() rollback of a failed IPv6 keeps the IPv4 address's memory", async () => {
  // The only free IPv4 address is remembered for web-0 and the IPv6 pool
  // is full: a stranger's reservation fails as a whole, and the address is
  // still remembered for web-0 afterwards (a static config saves the
  // state of a failed reservation).
  const config = conf({
    sticky: true,
    stickyCooldown: 60,
    addresses: ["10.0.0.5"],
    ipv6Subnet: "fd00:db8::/64",
    ipv6Addresses: ["fd00:db8::5"],
  });
  const clock = { now: 1_000_000 };
  const store = new FakeStore();
  const engine = new IpamEngine({
    store,
    hostMacs: () => [],
    now: () => clock.now,
    bootId: () => "b",
  });
  const network = "azure";
  await engine.reserve(key("h"), {
    config,
    network,
    pod: "x/h",
    requestedIp: "10.0.0.5",
  });
  // h holds both; its IPv4 address becomes free, remembered for web-0.
  const held = store.state as IpamState;
  const v4 = held.pools["10.0.0.0/24"] as IpamState["pools"][string];
  v4.addresses["10.0.0.5"] = { lastPod: "web/web-0", releasedAt: clock.now };
  const seeded = new FakeStore(held);
  const again = new IpamEngine({
    store: seeded,
    hostMacs: () => [],
    now: () => clock.now + 1000,
    bootId: () => "b",
  });
  await assert.rejects(
    again.reserve(key("o1"), { config, network, pod: "x/other" }),
    { name: "CniError", code: 100 },
  );
  assert.deepEqual(
    seeded.state?.pools["10.0.0.0/24"]?.addresses["10.0.0.5"],
    { lastPod: "web/web-0", releasedAt: clock.now },
  );
});
