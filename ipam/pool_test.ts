import assert from "node:assert/strict";
import type { PoolState } from "./state.ts";
import type { HostInterface } from "@vnet/azure";
import { allocate, release } from "./allocator.ts";
import {
  mergePools,
  poolSpecsFromInterfaces,
  poolUsage,
  syncNicAddresses,
} from "./pool.ts";
import type { HostLink } from "./pool.ts";
import { emptyIpamState } from "./state.ts";

const LINKS: HostLink[] = [
  { name: "lo", mac: "000000000000" },
  { name: "eth0", mac: "000d3af9dca6" },
  { name: "eth1", mac: "000d3af9dc11" },
];

function nic(
  mac: string,
  prefix: string,
  addrs: [string, boolean][],
  options: { secondary?: boolean } = {},
): HostInterface {
  return {
    macAddress: mac,
    isPrimary: options.secondary !== true,
    subnets: [{
      prefix,
      addresses: addrs.map(([address, p]) => ({ address, isPrimary: p })),
    }],
  };
}

const PRIMARY = nic("000D3AF9DCA6", "10.240.0.0/16", [
  ["10.240.0.4", true],
  ["10.240.0.5", false],
  ["10.240.0.6", false],
]);
const SECONDARY = nic("00:0D:3A:F9:DC:11", "10.241.0.0/16", [
  ["10.241.0.4", true],
  ["10.241.0.5", false],
], { secondary: true });

Deno.test("poolSpecsFromInterfaces() never hands out an address the host holds, marked primary or not (#15)", () => {
  const dual: HostInterface = {
    macAddress: "000d3af9dca6",
    isPrimary: true,
    subnets: [
      ...PRIMARY.subnets,
      {
        prefix: "fd00:10:240::/64",
        addresses: [
          { address: "fd00:10:240::4", isPrimary: false },
          { address: "fd00:10:240::5", isPrimary: false },
        ],
      },
    ],
  };
  const links: HostLink[] = [
    { name: "lo", mac: "000000000000", addresses: ["127.0.0.1", "::1"] },
    {
      name: "eth0",
      mac: "000d3af9dca6",
      addresses: ["10.240.0.4", "10.240.0.6", "fd00:10:240:0::4"],
    },
  ];
  const specs = poolSpecsFromInterfaces([dual], links);
  assert.deepEqual(specs.map((s) => [s.subnet, s.addresses]), [
    ["10.240.0.0/16", ["10.240.0.5"]],
    ["fd00:10:240::/64", ["fd00:10:240::5"]],
  ]);
  assert.deepEqual(specs.map((s) => s.primaryIps), [
    ["10.240.0.4", "10.240.0.6"],
    ["fd00:10:240::4"],
  ]);
  // The warm pool's NIC sync passes every IPv4 secondary: .6 stays out.
  const state = emptyIpamState("b");
  mergePools(state, specs);
  const sync = syncNicAddresses(state, {
    macAddress: "000d3af9dca6",
    addresses: ["10.240.0.5", "10.240.0.6"],
  });
  assert.deepEqual(sync, { added: [], removed: [] });
});

Deno.test("poolSpecsFromInterfaces() matches NICs to host links by MAC", () => {
  const specs = poolSpecsFromInterfaces([PRIMARY, SECONDARY], LINKS);
  assert.deepEqual(specs, [
    {
      subnet: "10.240.0.0/16",
      gateway: "10.240.0.1",
      macAddress: "000d3af9dca6",
      priority: 0,
      primaryIps: ["10.240.0.4"],
      addresses: ["10.240.0.5", "10.240.0.6"],
      ifName: "eth0",
    },
    {
      subnet: "10.241.0.0/16",
      gateway: "10.241.0.1",
      macAddress: "000d3af9dc11",
      priority: 1,
      primaryIps: ["10.241.0.4"],
      addresses: ["10.241.0.5"],
      ifName: "eth1",
    },
  ]);
});

Deno.test("poolSpecsFromInterfaces() skips NICs matching no link", () => {
  const stranger = nic("AABBCCDDEEFF", "10.9.0.0/24", [[
    "10.9.0.5",
    false,
  ]], { secondary: true });
  assert.deepEqual(
    poolSpecsFromInterfaces([stranger], LINKS).map((s) => s.subnet),
    [],
  );
});

Deno.test("poolSpecsFromInterfaces() with master keeps every NIC, naming master for its own", () => {
  // Bridge mode: azure0 carries eth0's MAC and sorts first.
  const links = [{ name: "azure0", mac: "000d3af9dca6" }, ...LINKS];
  const pools = (master?: string) =>
    poolSpecsFromInterfaces(
      [PRIMARY, SECONDARY],
      links,
      master === undefined ? {} : { master },
    ).map((s) => [s.subnet, s.macAddress, s.ifName]);
  assert.deepEqual(pools(), [
    ["10.240.0.0/16", "000d3af9dca6", "azure0"],
    ["10.241.0.0/16", "000d3af9dc11", "eth1"],
  ]);
  assert.deepEqual(pools("eth0"), [
    ["10.240.0.0/16", "000d3af9dca6", "eth0"],
    ["10.241.0.0/16", "000d3af9dc11", "eth1"],
  ]);
  assert.deepEqual(pools("eth1"), pools());
});

Deno.test("poolSpecsFromInterfaces() binds the wildcard MAC to master or the only link", () => {
  const wild = nic("*", "10.0.0.0/24", [["10.0.0.4", true], [
    "10.0.0.5",
    false,
  ]]);
  assert.deepEqual(poolSpecsFromInterfaces([wild], LINKS), []);
  assert.equal(
    poolSpecsFromInterfaces([wild], LINKS, { master: "eth0" })[0]?.ifName,
    "eth0",
  );
  assert.equal(
    poolSpecsFromInterfaces([wild], LINKS.slice(0, 2))[0]?.macAddress,
    "000d3af9dca6",
  );
});

Deno.test("poolSpecsFromInterfaces() drops gateway, network, broadcast and outsiders", () => {
  const odd = nic("000d3af9dca6", "10.5.0.0/24", [
    ["10.5.0.0", false],
    ["10.5.0.1", false],
    ["10.5.0.255", false],
    ["10.6.0.9", false],
    ["bogus", false],
    ["10.5.0.20", false],
  ]);
  const bad = nic("000d3af9dca6", "not-a-prefix", [["10.5.0.9", false]]);
  const specs = poolSpecsFromInterfaces([odd, bad], LINKS);
  assert.equal(specs.length, 1);
  assert.deepEqual(specs[0]?.addresses, ["10.5.0.20"]);
});

Deno.test("mergePools() follows the NIC gaining and losing addresses", async (t) => {
  const state = emptyIpamState("b");
  const base = poolSpecsFromInterfaces([PRIMARY], LINKS);
  mergePools(state, base);
  allocate(state, { containerId: "a", ifName: "eth0" }); // 10.240.0.5
  const pool = () => state.pools["10.240.0.0/16"];

  await t.step("a new address is available at once", () => {
    const grown = nic("000D3AF9DCA6", "10.240.0.0/16", [
      ["10.240.0.4", true],
      ["10.240.0.5", false],
      ["10.240.0.6", false],
      ["10.240.0.7", false],
    ]);
    mergePools(state, poolSpecsFromInterfaces([grown], LINKS));
    assert.deepEqual(Object.keys(pool()?.addresses ?? {}), [
      "10.240.0.5",
      "10.240.0.6",
      "10.240.0.7",
    ]);
    assert.equal(pool()?.addresses["10.240.0.5"]?.containerId, "a");
  });

  await t.step("a vanished held address stays, stale; a free one goes", () => {
    const shrunk = nic("000D3AF9DCA6", "10.240.0.0/16", [
      ["10.240.0.4", true],
      ["10.240.0.7", false],
    ]);
    mergePools(state, poolSpecsFromInterfaces([shrunk], LINKS));
    assert.deepEqual(pool()?.addresses, {
      "10.240.0.5": { containerId: "a", ifName: "eth0", stale: true },
      "10.240.0.7": {},
    });
    assert.deepEqual(poolUsage(pool() ?? assert.fail()), { total: 2, used: 1 });
  });

  await t.step("an address seen again loses stale", () => {
    mergePools(state, base);
    assert.deepEqual(pool()?.addresses["10.240.0.5"], {
      containerId: "a",
      ifName: "eth0",
    });
  });

  await t.step("a vanished pool keeps only held addresses, then goes", () => {
    mergePools(state, []);
    assert.deepEqual(pool()?.addresses, {
      "10.240.0.5": { containerId: "a", ifName: "eth0", stale: true },
    });
    release(state, { containerId: "a", ifName: "eth0" });
    assert.equal(pool(), undefined);
  });
});

Deno.test("syncNicAddresses() adds new and drops lost free addresses of one NIC only", async (t) => {
  function state() {
    return {
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
          addresses: {
            "10.0.0.5": { containerId: "c1", ifName: "eth0" },
            "10.0.0.6": {},
            "10.0.0.7": { lastPod: "ns/p", releasedAt: 5 },
          },
        },
        "10.1.0.0/24": {
          subnet: "10.1.0.0/24",
          gateway: "10.1.0.1",
          macAddress: "000d3af9dc11",
          priority: 1,
          primaryIps: [],
          addresses: { "10.1.0.9": {} },
        },
      },
    };
  }
  await t.step("growth: new addresses are free at once", () => {
    const s = state();
    const out = syncNicAddresses(s, {
      macAddress: "00:0d:3a:f9:dc:a6",
      addresses: ["10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.9", "10.0.0.8"],
    });
    assert.deepEqual(out, { added: ["10.0.0.8", "10.0.0.9"], removed: [] });
    assert.deepEqual(Object.keys(s.pools["10.0.0.0/24"].addresses), [
      "10.0.0.5",
      "10.0.0.6",
      "10.0.0.7",
      "10.0.0.8",
      "10.0.0.9",
    ]);
    assert.deepEqual(s.pools["10.1.0.0/24"].addresses, { "10.1.0.9": {} });
  });
  await t.step("shrink: held, primary, gateway and other subnets stay", () => {
    const s = state();
    const out = syncNicAddresses(s, {
      macAddress: "000d3af9dca6",
      addresses: ["10.0.0.1", "10.0.0.4", "10.2.0.5"],
    });
    assert.deepEqual(out, { added: [], removed: ["10.0.0.6", "10.0.0.7"] });
    assert.deepEqual(s.pools["10.0.0.0/24"].addresses, {
      "10.0.0.5": { containerId: "c1", ifName: "eth0" },
    });
  });
  await t.step("an IPv6 pool of the NIC is left to the source (#15)", () => {
    const s = state();
    const v6: PoolState = {
      subnet: "fd00:10:240::/64",
      gateway: "fd00:10:240::1",
      macAddress: "000d3af9dca6",
      priority: 0,
      primaryIps: ["fd00:10:240::4"],
      addresses: { "fd00:10:240::5": {}, "fd00:10:240::6": {} },
    };
    const pools: Record<string, PoolState> = s.pools;
    pools["fd00:10:240::/64"] = structuredClone(v6);
    const out = syncNicAddresses(s, {
      macAddress: "000d3af9dca6",
      addresses: ["10.0.0.5", "10.0.0.6", "10.0.0.7", "fd00:10:240::7"],
    });
    assert.deepEqual(out, { added: [], removed: [] });
    assert.deepEqual(pools["fd00:10:240::/64"], v6);
  });
  await t.step(
    "withdrawn: kept out of a later refresh whether a pool had it or not, unless held",
    () => {
      const s = state();
      // .9 reached the NIC after the last refresh: no pool has it yet.
      const out = syncNicAddresses(s, {
        macAddress: "000d3af9dca6",
        addresses: ["10.0.0.6", "10.0.0.8"],
        withdrawn: ["10.0.0.5", "10.0.0.7", "10.0.0.9"],
      }, { now: 1_000 });
      assert.deepEqual(out, {
        added: ["10.0.0.8"],
        removed: ["10.0.0.7", "10.0.0.9"],
      });
      // A source that lags ARM still lists all of them.
      mergePools(s, [{
        subnet: "10.0.0.0/24",
        gateway: "10.0.0.1",
        macAddress: "000d3af9dca6",
        priority: 0,
        primaryIps: ["10.0.0.4"],
        addresses: ["10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8", "10.0.0.9"],
      }], { now: 2_000 });
      assert.deepEqual(s.pools["10.0.0.0/24"]?.addresses, {
        "10.0.0.5": { containerId: "c1", ifName: "eth0" },
        "10.0.0.6": {},
        "10.0.0.8": {},
      });
    },
  );
  await t.step("another MAC changes nothing", () => {
    const s = state();
    const out = syncNicAddresses(s, {
      macAddress: "000d3a000000",
      addresses: [],
    });
    assert.deepEqual(out, { added: [], removed: [] });
    assert.deepEqual(s, state());
  });
});
