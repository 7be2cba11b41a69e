import assert from "node:assert/strict";
import { FakeStore } from "./_fake_store.ts";
import {
  ipamConfig,
  nmagentXml,
  wireserverConfig,
  xmlResponse,
} from "./_testing.ts";
import { IpamEngine } from "./engine.ts";
import type { HostLink } from "./pool.ts";
import type { IpamState, PoolState } from "./state.ts";

/** A static config on 10.0.0.0/24 with these `ipam` keys. */
function staticConfig(ipam: Record<string, unknown>) {
  return ipamConfig({ environment: "static", subnet: "10.0.0.0/24", ...ipam });
}

const config = staticConfig({
  primaryIp: "10.0.0.4",
  addresses: ["10.0.0.4", "10.0.0.5", "10.0.0.6"],
});
const c1 = { containerId: "c1", ifName: "eth0" };
const c2 = { containerId: "c2", ifName: "eth0" };

function engine(): IpamEngine {
  return new IpamEngine({
    store: new FakeStore(),
    hostMacs: () => [],
    now: () => 1,
    bootId: () => "b",
  });
}

Deno.test("IpamEngine.reserve() hands out the lowest free address once per attachment", async () => {
  const e = engine();
  const a = await e.reserve(c1, { config, network: "azure" });
  assert.deepEqual(a, {
    ip: "10.0.0.5",
    subnet: "10.0.0.0/24",
    gateway: "10.0.0.1",
  });
  assert.deepEqual(await e.reserve(c1, { config, network: "azure" }), a);
  assert.equal(
    (await e.reserve(c2, { config, network: "azure" })).ip,
    "10.0.0.6",
  );
  await assert.rejects(
    e.reserve({ containerId: "c3", ifName: "eth0" }, { config }),
    { name: "CniError", code: 100 },
  );
});

Deno.test("IpamEngine.reserve() honours requestedIp", async () => {
  const e = engine();
  const a = await e.reserve(c1, { config, requestedIp: "10.0.0.6" });
  assert.equal(a.ip, "10.0.0.6");
});

Deno.test("IpamEngine.release() frees only the calling network's reservation", async () => {
  const e = engine();
  await e.reserve(c1, { config, network: "azure" });
  assert.deepEqual(await e.release(c1, { network: "other" }), []);
  assert.equal((await e.held(c1))?.ip, "10.0.0.5");
  assert.deepEqual(await e.release(c1, { network: "azure" }), ["10.0.0.5"]);
  assert.equal(await e.held(c1), undefined);
  assert.deepEqual(await e.release(c1, { network: "azure" }), []);
});

Deno.test("IpamEngine.collect() keeps the listed attachments and other networks'", async () => {
  const e = engine();
  await e.reserve(c1, { config, network: "azure" });
  await e.reserve(c2, { config, network: "other" });
  assert.deepEqual(await e.collect([], { network: "azure" }), [c1]);
  assert.equal(await e.held(c1), undefined);
  assert.equal((await e.held(c2))?.ip, "10.0.0.6");
  assert.deepEqual(await e.collect([c2], { network: "other" }), []);
});

Deno.test("IpamEngine.status() counts free, used and total (primary excluded) per pool", async () => {
  const e = engine();
  await e.reserve(c1, { config, network: "azure" });
  assert.deepEqual(await e.status(config), [
    { subnet: "10.0.0.0/24", total: 2, used: 1, free: 1 },
  ]);
});

const dualConfig = staticConfig({
  primaryIp: "10.0.0.4",
  addresses: ["10.0.0.5", "10.0.0.6"],
  ipv6Subnet: "fd00:db8::/64",
  // Out of order, one in long form, the network and gateway among them.
  ipv6Addresses: [
    "fd00:db8::10",
    "fd00:db8:0:0::9",
    "fd00:db8::",
    "fd00:db8::1",
  ],
});

Deno.test("IpamEngine.reserve() gives one address of each family, the lowest free, deterministically (dual-stack)", async (t) => {
  const e = engine();
  const a = await e.reserve(c1, { config: dualConfig, network: "azure" });
  await t.step("both families, IPv6 in canonical text", () => {
    assert.deepEqual(a, {
      ip: "10.0.0.5",
      subnet: "10.0.0.0/24",
      gateway: "10.0.0.1",
      ipv6: {
        ip: "fd00:db8::9",
        subnet: "fd00:db8::/64",
        gateway: "fd00:db8::1",
      },
    });
  });
  await t.step("a repeated reserve and held() give the same pair", async () => {
    assert.deepEqual(await e.reserve(c1, { config: dualConfig }), a);
    assert.deepEqual(await e.held(c1), a);
  });
  await t.step("the next attachment gets the next of each", async () => {
    const b = await e.reserve(c2, { config: dualConfig, network: "azure" });
    assert.deepEqual([b.ip, b.ipv6?.ip], ["10.0.0.6", "fd00:db8::10"]);
  });
  await t.step("release gives back both", async () => {
    assert.deepEqual(
      (await e.release(c1, { network: "azure" })).sort(),
      ["10.0.0.5", "fd00:db8::9"],
    );
    const again = await e.reserve({ containerId: "c3", ifName: "eth0" }, {
      config: dualConfig,
    });
    assert.deepEqual([again.ip, again.ipv6?.ip], ["10.0.0.5", "fd00:db8::9"]);
  });
});

Deno.test("IpamEngine.reserve() takes neither family when one is exhausted", async () => {
  const e = engine();
  const tight = staticConfig({
    addresses: ["10.0.0.5", "10.0.0.6"],
    ipv6Subnet: "fd00:db8::/64",
    ipv6Addresses: ["fd00:db8::9"],
  });
  await e.reserve(c1, { config: tight });
  await assert.rejects(e.reserve(c2, { config: tight }), {
    name: "CniError",
    code: 100,
    message: /fd00:db8::\/64: 1 of 1 in use/,
  });
  assert.equal(await e.held(c2), undefined);
  assert.deepEqual(await e.status(tight), [
    { subnet: "10.0.0.0/24", total: 2, used: 1, free: 1 },
    { subnet: "fd00:db8::/64", total: 1, used: 1, free: 0 },
  ]);
});

Deno.test("IpamEngine.syncNic() makes new addresses reservable at once and withdraws lost free ones", async () => {
  const store = new FakeStore();
  const e = new IpamEngine({
    store,
    hostMacs: () => [],
    now: () => 1,
    bootId: () => "b",
  });
  assert.deepEqual(
    await e.syncNic({ macAddress: "000d3af9dca6", addresses: ["10.0.0.9"] }),
    { added: [], removed: [] },
    "no state: nothing to merge into",
  );
  // A dynamic pool with its first address held.
  await store.update(() => ({
    value: undefined,
    next: {
      version: 1 as const,
      lastRefresh: 1,
      bootId: "b",
      pools: {
        "10.0.0.0/24": {
          subnet: "10.0.0.0/24",
          gateway: "10.0.0.1",
          macAddress: "000d3af9dca6",
          priority: 0,
          primaryIps: ["10.0.0.4"],
          addresses: { "10.0.0.5": { containerId: "c0", ifName: "eth0" } },
        },
      },
    },
  }));
  assert.deepEqual(
    await e.syncNic({
      macAddress: "00-0D-3A-F9-DC-A6",
      addresses: ["10.0.0.5", "10.0.0.6", "10.0.0.7"],
    }),
    { added: ["10.0.0.6", "10.0.0.7"], removed: [] },
  );
  assert.deepEqual(
    await e.syncNic({ macAddress: "000d3af9dca6", addresses: ["10.0.0.6"] }),
    { added: [], removed: ["10.0.0.7"] },
    "the held 10.0.0.5 stays although the NIC list lacks it",
  );
  const held = await store.update((s) => ({ value: s }));
  assert.deepEqual(Object.keys(held?.pools["10.0.0.0/24"]?.addresses ?? {}), [
    "10.0.0.5",
    "10.0.0.6",
  ]);
});

const NIC0 = "000d3af9dca6";
const NIC1 = "000d3af9dc11";

/**
 * One state file for two NICs, refreshed at time 1: eth0's NIC (matched to
 * the bridge azure0) with an IPv4 pool, eth1's (secondary) with an IPv4
 * and an IPv6 pool.
 */
function twoNicState(): IpamState {
  const pool = (
    subnet: string,
    gateway: string,
    extra: Pick<PoolState, "macAddress" | "addresses"> & Partial<PoolState>,
  ): PoolState => ({ subnet, gateway, priority: 0, primaryIps: [], ...extra });
  return {
    version: 1,
    lastRefresh: 1,
    bootId: "b",
    pools: {
      "10.240.0.0/24": pool("10.240.0.0/24", "10.240.0.1", {
        ifName: "azure0",
        macAddress: NIC0,
        primaryIps: ["10.240.0.4"],
        addresses: { "10.240.0.5": {}, "10.240.0.6": {} },
      }),
      "10.241.0.0/24": pool("10.241.0.0/24", "10.241.0.1", {
        ifName: "eth1",
        macAddress: NIC1,
        priority: 1,
        addresses: { "10.241.0.5": {}, "10.241.0.6": {} },
      }),
      "fd00:241::/64": pool("fd00:241::/64", "fd00:241::1", {
        ifName: "eth1",
        macAddress: NIC1,
        priority: 1,
        addresses: { "fd00:241::5": {}, "fd00:241::6": {} },
      }),
    },
  };
}

/** The host's links of {@link twoNicState}, counting the reads. */
function twoNicLinks(): { read: () => HostLink[]; reads: number } {
  const links: HostLink[] = [
    { name: "azure0", mac: NIC0, addresses: ["10.240.0.4"] },
    { name: "eth0", mac: NIC0, addresses: ["fe80::20d:3aff:fef9:dca6"] },
    { name: "eth1", mac: NIC1, addresses: ["10.241.0.4"] },
    { name: "lo", mac: "000000000000", addresses: ["127.0.0.1"] },
  ];
  const out = {
    reads: 0,
    read: () => {
      out.reads++;
      return links;
    },
  };
  return out;
}

/**
 * A wireserver (injected `fetch`) reporting the NICs of
 * {@link twoNicState}, IPv4 only, counting its requests.
 */
function twoNicSource(): {
  fetch: () => Promise<Response>;
  requests: () => number;
} {
  let requests = 0;
  const fetch = () => {
    requests++;
    return Promise.resolve(xmlResponse(nmagentXml([
      {
        mac: "000D3AF9DCA6",
        subnets: [{
          prefix: "10.240.0.0/24",
          primary: "10.240.0.4",
          addresses: ["10.240.0.5", "10.240.0.6", "10.240.0.7"],
        }],
      },
      {
        mac: "000D3AF9DC11",
        primary: false,
        subnets: [{
          prefix: "10.241.0.0/24",
          primary: "10.241.0.4",
          addresses: ["10.241.0.5"],
        }],
      },
    ])));
  };
  return { fetch, requests: () => requests };
}

Deno.test("IpamEngine.reserve() with master takes both families from its NIC's pools only (two NICs, one state file)", async (t) => {
  const host = twoNicLinks();
  const e = new IpamEngine({
    store: new FakeStore(twoNicState()),
    hostMacs: host.read,
    now: () => 1,
    bootId: () => "b",
  });
  // No refresh is due: the wireserver (nothing listens) is not asked.
  const eth0 = { ...wireserverConfig(), master: "eth0" };
  const eth1 = { ...wireserverConfig(), master: "eth1" };
  const a = await e.reserve(c1, { config: eth0, network: "blue" });
  await t.step("master eth0: IPv4 only, as its NIC has no IPv6 pool", () => {
    assert.deepEqual(a, {
      ip: "10.240.0.5",
      subnet: "10.240.0.0/24",
      gateway: "10.240.0.1",
    });
  });
  await t.step("master eth1: both families of its NIC", async () => {
    const b = await e.reserve(c2, { config: eth1, network: "red" });
    assert.deepEqual([b.ip, b.ipv6?.ip], ["10.241.0.5", "fd00:241::5"]);
  });
  await t.step(
    "the host's links are read once per master, not on a repeated ADD",
    async () => {
      assert.equal(host.reads, 2);
      assert.deepEqual(
        await e.reserve(c1, { config: eth0, network: "blue" }),
        a,
      );
      assert.equal(host.reads, 2);
    },
  );
  await t.step("a requested address of the other NIC: 107", async () => {
    await assert.rejects(
      e.reserve({ containerId: "c3", ifName: "eth0" }, {
        config: eth0,
        requestedIp: "10.241.0.6",
      }),
      {
        name: "CniError",
        code: 107,
        message: /is on NIC 000d3af9dc11, not on master "eth0"/,
      },
    );
  });
  await t.step(
    "master's NIC exhausted: 100 naming the pools not used",
    async () => {
      const c3 = { containerId: "c3", ifName: "eth0" };
      const c4 = { containerId: "c4", ifName: "eth0" };
      assert.equal((await e.reserve(c3, { config: eth1 })).ip, "10.241.0.6");
      await assert.rejects(e.reserve(c4, { config: eth1 }), {
        name: "CniError",
        code: 100,
        message:
          /^No free address in subnet 10\.241\.0\.0\/24: 2 of 2 in use; pools of other NICs not used because of master "eth1" \(NIC 000d3af9dc11\)$/,
        details: /subnet 10\.240\.0\.0\/24 on NIC 000d3af9dca6 \(1 free\)/,
      });
      assert.equal(await e.held(c4), undefined);
    },
  );
  await t.step("status() counts master's pools only", async () => {
    assert.deepEqual(await e.status(eth0), [
      { subnet: "10.240.0.0/24", total: 2, used: 1, free: 1 },
    ]);
  });
});

Deno.test("IpamEngine.reserve() of networks on two NICs sharing a state file: one's refresh keeps the other's pools", async () => {
  const { fetch, requests } = twoNicSource();
  const store = new FakeStore();
  const e = new IpamEngine({
    store,
    fetch,
    hostMacs: twoNicLinks().read,
    now: () => 1,
    bootId: () => "b",
  });
  const eth0 = { ...wireserverConfig(), master: "eth0" };
  const eth1 = { ...wireserverConfig(), master: "eth1" };
  assert.equal((await e.reserve(c1, { config: eth0 })).ip, "10.240.0.5");
  // Within the refresh interval: served from what eth0's refresh saved.
  assert.equal((await e.reserve(c2, { config: eth1 })).ip, "10.241.0.5");
  assert.equal(requests(), 1);
  assert.deepEqual(
    Object.values(store.state?.pools ?? {}).map((p) => [
      p.subnet,
      p.macAddress,
      p.ifName,
    ]),
    [
      ["10.240.0.0/24", NIC0, "eth0"],
      ["10.241.0.0/24", NIC1, "eth1"],
    ],
  );
});

Deno.test("IpamEngine.reserve() with master reuses the master's MAC read within the refresh interval", async (t) => {
  const host = twoNicLinks();
  let now = 1;
  const e = new IpamEngine({
    store: new FakeStore(twoNicState()),
    fetch: twoNicSource().fetch,
    hostMacs: host.read,
    now: () => now,
    bootId: () => "b",
  });
  const eth0 = { ...wireserverConfig(), master: "eth0" };
  const key = (id: string) => ({ containerId: id, ifName: "eth0" });
  await t.step(
    "the first ADD reads the links, the next ones do not",
    async () => {
      assert.equal(
        (await e.reserve(key("a"), { config: eth0 })).ip,
        "10.240.0.5",
      );
      assert.equal(
        (await e.reserve(key("b"), { config: eth0 })).ip,
        "10.240.0.6",
      );
      assert.equal(host.reads, 1);
    },
  );
  await t.step(
    "a refresh reads them once, for the pools and the MAC",
    async () => {
      now += eth0.queryIntervalMs;
      assert.equal(
        (await e.reserve(key("c"), { config: eth0 })).ip,
        "10.240.0.7",
      );
      assert.equal(host.reads, 2);
    },
  );
});
