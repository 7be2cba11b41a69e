import assert from "node:assert/strict";
import fc from "fast-check";
import {
  allocate,
  findReservation,
  gcReservations,
  release,
} from "./allocator.ts";
import { mergePools } from "./pool.ts";
import type { PoolSpec } from "./pool.ts";
import { emptyIpamState } from "./state.ts";
import type { IpamState } from "./state.ts";

function spec(
  subnet: string,
  addresses: string[],
  extra: Partial<PoolSpec> = {},
): PoolSpec {
  const gw = subnet.replace(/\.0\/\d+$/, ".1");
  return {
    subnet,
    gateway: gw,
    macAddress: "000d3af9dca6",
    priority: 0,
    primaryIps: [],
    addresses,
    ...extra,
  };
}

function stateWith(...specs: PoolSpec[]): IpamState {
  const s = emptyIpamState("boot");
  mergePools(s, specs);
  return s;
}

Deno.test("allocate() hands out the lowest free address", () => {
  const s = stateWith(
    spec("10.1.0.0/24", ["10.1.0.9", "10.1.0.5", "10.1.0.7"]),
  );
  assert.equal(
    allocate(s, { containerId: "a", ifName: "eth0" }).ip,
    "10.1.0.5",
  );
  assert.equal(
    allocate(s, { containerId: "b", ifName: "eth0" }).ip,
    "10.1.0.7",
  );
  release(s, { containerId: "a", ifName: "eth0" });
  assert.equal(
    allocate(s, { containerId: "c", ifName: "eth0" }).ip,
    "10.1.0.5",
  );
});

Deno.test("allocate() never hands out primary, network, broadcast or gateway", () => {
  const s = stateWith(spec("10.1.0.0/24", ["10.1.0.6"], {
    primaryIps: ["10.1.0.4"],
  }));
  const pool = s.pools["10.1.0.0/24"];
  assert.ok(pool);
  // Even if a corrupt or hand-edited state lists them, they are skipped.
  for (const ip of ["10.1.0.0", "10.1.0.1", "10.1.0.255", "10.1.0.4"]) {
    pool.addresses[ip] = {};
  }
  assert.equal(
    allocate(s, { containerId: "a", ifName: "eth0" }).ip,
    "10.1.0.6",
  );
  assert.throws(() => allocate(s, { containerId: "b", ifName: "eth0" }), {
    name: "CniError",
    code: 100,
  });
});

Deno.test("allocate() returns the same address on an ADD retry", () => {
  const s = stateWith(spec("10.1.0.0/24", ["10.1.0.5", "10.1.0.6"]));
  const key = { containerId: "a", ifName: "eth0" };
  assert.equal(allocate(s, key).ip, "10.1.0.5");
  assert.equal(allocate(s, key).ip, "10.1.0.5");
  assert.equal(
    allocate(s, { ...key, requestedIp: "10.1.0.5/24" }).ip,
    "10.1.0.5",
  );
  assert.throws(() => allocate(s, { ...key, requestedIp: "10.1.0.6" }), {
    name: "CniError",
    code: 107,
    message: /already holds "10.1.0.5"/,
  });
  // Another ifname of the same container is a different attachment.
  assert.equal(
    allocate(s, { containerId: "a", ifName: "eth1" }).ip,
    "10.1.0.6",
  );
});

Deno.test("allocate() honours a requested address", async (t) => {
  const s = stateWith(
    spec("10.1.0.0/24", ["10.1.0.5", "10.1.0.6", "10.1.0.7"]),
  );
  await t.step("when free", () => {
    assert.equal(
      allocate(s, { containerId: "a", ifName: "eth0", requestedIp: "10.1.0.7" })
        .ip,
      "10.1.0.7",
    );
  });
  const cases: [string, RegExp][] = [
    ["10.1.0.7", /"10.1.0.7": in use by container "a"/],
    ["10.9.0.7", /"10.9.0.7": not in any address pool/],
    ["10.1.0.1", /"10.1.0.1": not in any address pool/],
  ];
  for (const [ip, message] of cases) {
    await t.step(`fails with 107 for ${ip}`, () => {
      assert.throws(
        () =>
          allocate(s, { containerId: "b", ifName: "eth0", requestedIp: ip }),
        { name: "CniError", code: 107, message },
      );
    });
  }
  await t.step("fails with 7 for text that is no address", () => {
    assert.throws(
      () => allocate(s, { containerId: "b", ifName: "eth0", requestedIp: "x" }),
      { name: "CniError", code: 7, message: /requested address "x"/ },
    );
  });
});

Deno.test("allocate() names the subnet and usage when exhausted", () => {
  const ips = ["5", "6", "7", "8", "9", "10", "11"].map((n) => `10.240.0.${n}`);
  const s = stateWith(spec("10.240.0.0/16", ips));
  for (let i = 0; i < 7; i++) {
    allocate(s, { containerId: `c${i}`, ifName: "eth0" });
  }
  assert.throws(() => allocate(s, { containerId: "c8", ifName: "eth0" }), {
    name: "CniError",
    code: 100,
    message: /^No free address in subnet 10\.240\.0\.0\/16: 7 of 7 in use$/,
  });
  assert.throws(
    () => allocate(emptyIpamState(""), { containerId: "x", ifName: "eth0" }),
    {
      name: "CniError",
      code: 100,
      message: /no address pool/,
    },
  );
});

Deno.test("allocate() prefers secondary NICs, then honours ipam.subnet", () => {
  const s = stateWith(
    spec("10.1.0.0/24", ["10.1.0.5"]),
    spec("10.2.0.0/24", ["10.2.0.5"], { priority: 1 }),
    spec("10.0.0.0/24", ["10.0.0.5"]),
  );
  assert.equal(allocate(s, { containerId: "a", ifName: "e" }).ip, "10.2.0.5");
  assert.equal(allocate(s, { containerId: "b", ifName: "e" }).ip, "10.0.0.5");
  assert.equal(
    allocate(s, { containerId: "c", ifName: "e", subnet: "10.1.0.9/24" }).ip,
    "10.1.0.5",
  );
  assert.throws(
    () => allocate(s, { containerId: "d", ifName: "e", subnet: "10.3.0.0/24" }),
    {
      name: "CniError",
      code: 100,
      message: /No address pool for subnet 10.3.0.0\/24/,
    },
  );
});

Deno.test("release() is idempotent and drops stale records", () => {
  const s = stateWith(spec("10.1.0.0/24", ["10.1.0.5", "10.1.0.6"]));
  const key = { containerId: "a", ifName: "eth0" };
  allocate(s, key);
  assert.deepEqual(release(s, key), ["10.1.0.5"]);
  assert.deepEqual(release(s, key), []);
  assert.deepEqual(release(s, { containerId: "zz", ifName: "" }), []);
  allocate(s, key);
  mergePools(s, [spec("10.1.0.0/24", ["10.1.0.6"])]);
  assert.deepEqual(s.pools["10.1.0.0/24"]?.addresses["10.1.0.5"], {
    containerId: "a",
    ifName: "eth0",
    stale: true,
  });
  assert.deepEqual(release(s, key), ["10.1.0.5"]);
  assert.equal(s.pools["10.1.0.0/24"]?.addresses["10.1.0.5"], undefined);
  assert.equal(findReservation(s, key), undefined);
});

Deno.test("gcReservations() releases attachments not in the valid list", () => {
  const s = stateWith(
    spec("10.1.0.0/24", ["10.1.0.5", "10.1.0.6", "10.1.0.7"]),
  );
  allocate(s, { containerId: "a", ifName: "eth0" });
  allocate(s, { containerId: "b", ifName: "eth0" });
  allocate(s, { containerId: "b", ifName: "eth1" });
  const dropped = gcReservations(s, [{ containerId: "b", ifName: "eth0" }]);
  assert.deepEqual(
    dropped.map((k) => `${k.containerId}/${k.ifName}`).sort(),
    ["a/eth0", "b/eth1"],
  );
  assert.equal(
    findReservation(s, { containerId: "b", ifName: "eth0" })?.ip,
    "10.1.0.6",
  );
});

Deno.test("gcReservations() with a network collects only its own and unmarked reservations", () => {
  const s = stateWith(
    spec("10.1.0.0/24", ["10.1.0.5", "10.1.0.6", "10.1.0.7", "10.1.0.8"]),
  );
  allocate(s, { containerId: "a", ifName: "eth0", network: "blue" });
  allocate(s, { containerId: "b", ifName: "eth0", network: "red" });
  allocate(s, { containerId: "c", ifName: "eth0", network: "blue" });
  // Written before reservations recorded their network.
  allocate(s, { containerId: "old", ifName: "eth0" });
  assert.deepEqual(s.pools["10.1.0.0/24"]?.addresses["10.1.0.5"], {
    containerId: "a",
    ifName: "eth0",
    network: "blue",
  });
  const dropped = gcReservations(s, [{ containerId: "c", ifName: "eth0" }], {
    network: "blue",
  });
  assert.deepEqual(
    dropped.map((k) => k.containerId).sort(),
    ["a", "old"],
  );
  assert.equal(
    findReservation(s, { containerId: "b", ifName: "eth0" })?.ip,
    "10.1.0.6",
  );
  assert.equal(
    findReservation(s, { containerId: "c", ifName: "eth0" })?.ip,
    "10.1.0.7",
  );
  // Red's GC (with an empty valid list) now takes b only.
  assert.deepEqual(gcReservations(s, [], { network: "red" }), [
    { containerId: "b", ifName: "eth0" },
  ]);
  assert.equal(
    findReservation(s, { containerId: "c", ifName: "eth0" })?.ip,
    "10.1.0.7",
  );
});

Deno.test("allocate() never hands one address to two attachments (property)", () => {
  const ips = Array.from({ length: 20 }, (_, i) => `10.1.0.${i + 5}`);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 30 })), {
        maxLength: 80,
      }),
      (ops) => {
        const s = stateWith(spec("10.1.0.0/24", ips));
        const held = new Map<number, string>();
        for (const [add, c] of ops) {
          const key = { containerId: `c${c}`, ifName: "eth0" };
          if (add) {
            try {
              const ip = allocate(s, key).ip;
              if (held.has(c)) assert.equal(held.get(c), ip);
              held.set(c, ip);
            } catch (err) {
              assert.equal((err as { code?: number }).code, 100);
              assert.equal(held.size, ips.length);
            }
          } else {
            release(s, key);
            held.delete(c);
          }
          assert.equal(new Set(held.values()).size, held.size);
        }
      },
    ),
    { numRuns: 100 },
  );
});

// Two NICs: eth0's pool was matched to the bridge azure0 (same MAC), eth1
// is a secondary NIC (preferred without master).
const NIC0 = "000d3af9dca6";
const NIC1 = "000d3af9dc11";
const ETH0 = { name: "eth0", mac: NIC0 };
const ETH1 = { name: "eth1", mac: NIC1 };

function twoNics(...extra: PoolSpec[]): IpamState {
  return stateWith(
    spec("10.240.0.0/24", ["10.240.0.5", "10.240.0.6"], {
      macAddress: NIC0,
      ifName: "azure0",
    }),
    spec("10.241.0.0/24", ["10.241.0.5"], {
      macAddress: NIC1,
      ifName: "eth1",
      priority: 1,
    }),
    ...extra,
  );
}

Deno.test("allocate() with master takes only the pools of its NIC, by MAC", async (t) => {
  await t.step("without master: every pool (the secondary NIC first)", () => {
    const s = twoNics();
    assert.equal(
      allocate(s, { containerId: "a", ifName: "e" }).ip,
      "10.241.0.5",
    );
  });
  await t.step("master eth0: its NIC's pool, recorded as azure0", () => {
    const s = twoNics();
    const a = allocate(s, { containerId: "a", ifName: "e", master: ETH0 });
    assert.deepEqual([a.ip, a.pool.macAddress], ["10.240.0.5", NIC0]);
    assert.equal(
      allocate(s, { containerId: "b", ifName: "e", master: ETH0 }).ip,
      "10.240.0.6",
    );
  });
  await t.step("master eth1: its NIC's pool", () => {
    const s = twoNics();
    assert.equal(
      allocate(s, { containerId: "a", ifName: "e", master: ETH1 }).ip,
      "10.241.0.5",
    );
  });
  await t.step(
    "a pool bound to no NIC (static shorthand) serves any master",
    () => {
      const s = stateWith(
        spec("10.9.0.0/24", ["10.9.0.5"], { macAddress: "*" }),
      );
      assert.equal(
        allocate(s, { containerId: "a", ifName: "e", master: ETH1 }).ip,
        "10.9.0.5",
      );
    },
  );
});

Deno.test("allocate() with master refuses an address or subnet of another NIC's pool", async (t) => {
  const s = twoNics();
  const onEth0 = { containerId: "a", ifName: "e", master: ETH0 };
  await t.step("a requested address: 107 naming both NICs", () => {
    assert.throws(
      () => allocate(s, { ...onEth0, requestedIp: "10.241.0.5" }),
      {
        name: "CniError",
        code: 107,
        message:
          /"10\.241\.0\.5": its pool 10\.241\.0\.0\/24 is on NIC 000d3af9dc11, not on master "eth0" \(NIC 000d3af9dca6\)/,
      },
    );
    assert.equal(
      s.pools["10.241.0.0/24"]?.addresses["10.241.0.5"]?.containerId,
      undefined,
    );
  });
  await t.step("ipam.subnet: 100 naming the pool's NIC", () => {
    assert.throws(
      () => allocate(s, { ...onEth0, subnet: "10.241.0.0/24" }),
      {
        name: "CniError",
        code: 100,
        message: /subnet 10\.241\.0\.0\/24 on master "eth0".*NIC 000d3af9dc11/,
      },
    );
  });
});

Deno.test("allocate() with master is exhausted when its NIC is, and says which pools it did not use", () => {
  const s = twoNics();
  allocate(s, { containerId: "a", ifName: "e", master: ETH1 });
  assert.throws(
    () => allocate(s, { containerId: "b", ifName: "e", master: ETH1 }),
    {
      name: "CniError",
      code: 100,
      message:
        /^No free address in subnet 10\.241\.0\.0\/24: 1 of 1 in use; pools of other NICs not used because of master "eth1" \(NIC 000d3af9dc11\)$/,
      details: /subnet 10\.240\.0\.0\/24 on NIC 000d3af9dca6 \(2 free\)/,
    },
  );
});

Deno.test("allocate() with master returns an attachment's reservation wherever it is (ADD retry)", () => {
  const s = twoNics();
  const key = { containerId: "a", ifName: "e" };
  assert.equal(allocate(s, { ...key, master: ETH0 }).ip, "10.240.0.5");
  // The same attachment under another master (a changed config) keeps it.
  assert.equal(allocate(s, { ...key, master: ETH1 }).ip, "10.240.0.5");
  assert.equal(
    allocate(s, { ...key, master: ETH1, requestedIp: "10.240.0.5" }).ip,
    "10.240.0.5",
  );
});

Deno.test("allocate() with master takes IPv6 from its NIC too", () => {
  const v6 = (subnet: string, ips: string[], extra: Partial<PoolSpec>) =>
    spec(subnet, ips, { gateway: subnet.replace(/::\/64$/, "::1"), ...extra });
  const s = twoNics(
    v6("fd00:240::/64", ["fd00:240::5"], { macAddress: NIC0 }),
    v6("fd00:241::/64", ["fd00:241::5"], { macAddress: NIC1, priority: 1 }),
  );
  const key = { containerId: "a", ifName: "e", family: 6 as const };
  assert.equal(allocate(s, { ...key, master: ETH0 }).ip, "fd00:240::5");
  assert.throws(
    () => allocate(s, { ...key, containerId: "b", master: ETH0 }),
    {
      name: "CniError",
      code: 100,
      message: /fd00:240::\/64: 1 of 1 in use; pools of other NICs not used/,
      details: /fd00:241::\/64 on NIC 000d3af9dc11 \(1 free\)/,
    },
  );
});

Deno.test("allocate() with a master no host link has: 108 while only other NICs' pools exist", () => {
  const s = twoNics();
  assert.throws(
    () =>
      allocate(s, { containerId: "a", ifName: "e", master: { name: "eth9" } }),
    {
      name: "CniError",
      code: 108,
      message: /Cannot find master "eth9"/,
      details: /subnet 10\.240\.0\.0\/24 on NIC 000d3af9dca6 \(2 free\)/,
    },
  );
});
