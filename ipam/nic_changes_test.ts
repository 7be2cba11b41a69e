import assert from "node:assert/strict";
import { FakeStore } from "./_fake_store.ts";
import { fakeSource, SOURCE_MAC, wireserverConfig } from "./_testing.ts";
import { IpamEngine } from "./engine.ts";
import { FileStore } from "./file_store.ts";
import type { IpamStore } from "./store.ts";
import { followNicChanges, recordNicChanges } from "./nic_changes.ts";
import { emptyIpamState, parseIpamState } from "./state.ts";

const MAC = SOURCE_MAC;

/**
 * A node whose source (the wireserver, lagging ARM) lists `source.addresses`;
 * `warm` stands for the agent's warm pool and `plugin` for a plugin process,
 * two engines on one state.
 */
function node(addresses: string[], fileStore?: IpamStore) {
  const { source, fetch } = fakeSource(addresses);
  const clock = { t: 1_000_000 };
  const store = new FakeStore();
  const options = {
    store: fileStore ?? store,
    fetch,
    hostMacs: () => [{ name: "eth0", mac: MAC }],
    now: () => clock.t,
    bootId: () => "b",
    sourceRetries: 0,
  };
  const config = wireserverConfig();
  const plugin = new IpamEngine(options);
  const reserve = async (id: string) =>
    (await plugin.reserve({ containerId: id, ifName: "eth0" }, { config }))
      .ip;
  return {
    source,
    clock,
    store,
    warm: new IpamEngine(options),
    reserve,
    free: () =>
      Object.entries(store.state?.pools["10.240.0.0/16"]?.addresses ?? {})
        .filter(([, r]) => r.containerId === undefined).map(([ip]) => ip),
  };
}

Deno.test("IpamEngine: a refresh that lags ARM does not bring back what syncNic withdrew", async (t) => {
  const n = node(["10.240.0.5", "10.240.0.6", "10.240.0.7"]);
  assert.equal(await n.reserve("c0"), "10.240.0.5");
  // The warm pool withdraws .6 before the ARM update that removes it.
  assert.deepEqual(
    await n.warm.syncNic({
      macAddress: MAC,
      addresses: ["10.240.0.5", "10.240.0.7"],
    }),
    { added: [], removed: ["10.240.0.6"] },
  );
  await t.step("a refresh still listing it leaves it out", async () => {
    n.clock.t += 11_000;
    assert.equal(await n.reserve("c1"), "10.240.0.7");
    assert.equal(n.source.requests, 2);
    assert.deepEqual(n.free(), []);
  });
  await t.step(
    "once the source agrees, the withdrawal is still remembered",
    async () => {
      n.source.addresses = ["10.240.0.5", "10.240.0.7"];
      n.clock.t += 11_000;
      await assert.rejects(n.reserve("c2"), { name: "CniError", code: 100 });
      assert.equal(n.source.requests, 3);
      assert.deepEqual(n.store.state?.nicChanges, {
        [MAC]: { removed: { "10.240.0.6": 1_300_000 } },
      });
    },
  );
  await t.step(
    "an older snapshot that lists it again leaves it out",
    async () => {
      n.source.addresses = ["10.240.0.5", "10.240.0.6", "10.240.0.7"];
      n.clock.t += 11_000;
      await assert.rejects(n.reserve("c2"), { name: "CniError", code: 100 });
      assert.equal(n.source.requests, 4);
      assert.deepEqual(n.free(), []);
    },
  );
});

Deno.test("IpamEngine: a withdrawn address comes back when the source still lists it after 5 minutes", async () => {
  const n = node(["10.240.0.5", "10.240.0.6"]);
  await n.reserve("c0");
  await n.warm.syncNic({ macAddress: MAC, addresses: ["10.240.0.5"] });
  // A refresh 1 s before the memory expires leaves it out...
  n.clock.t += 299_000;
  await assert.rejects(n.reserve("c1"), { name: "CniError", code: 100 });
  // ...the next one, after, takes it back.
  n.clock.t += 10_000;
  assert.equal(await n.reserve("c1"), "10.240.0.6");
  assert.equal(n.source.requests, 3);
  assert.equal(n.store.state?.nicChanges, undefined);
});

Deno.test("IpamEngine: a refresh that lags ARM keeps what syncNic just added", async () => {
  const n = node(["10.240.0.5"]);
  await n.reserve("c0");
  assert.deepEqual(
    await n.warm.syncNic({
      macAddress: MAC,
      addresses: ["10.240.0.5", "10.240.0.8", "10.240.0.9"],
    }),
    { added: ["10.240.0.8", "10.240.0.9"], removed: [] },
  );
  n.clock.t += 11_000;
  assert.equal(await n.reserve("c1"), "10.240.0.8");
  assert.equal(n.source.requests, 2);
  assert.deepEqual(n.free(), ["10.240.0.9"]);
  // The source catches up with one of them: its memory goes, the other's
  // stays.
  n.source.addresses = ["10.240.0.5", "10.240.0.8"];
  n.clock.t += 11_000;
  assert.equal(await n.reserve("c2"), "10.240.0.9");
  assert.deepEqual(Object.keys(n.store.state?.nicChanges?.[MAC]?.added ?? {}), [
    "10.240.0.9",
  ]);
});

Deno.test("IpamEngine: a plugin process honours the withdrawal the agent's warm pool wrote to the state file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cnitest-ipam-" });
  try {
    const n = node(
      ["10.240.0.5", "10.240.0.6", "10.240.0.7"],
      new FileStore(`${dir}/azure-vnet-ipam.json`),
    );
    assert.equal(await n.reserve("c0"), "10.240.0.5");
    await n.warm.syncNic({
      macAddress: MAC,
      addresses: ["10.240.0.5", "10.240.0.7"],
    });
    n.clock.t += 11_000;
    // `reserve` runs on an engine of its own: another process's view.
    assert.equal(await n.reserve("c1"), "10.240.0.7");
    const doc = JSON.parse(
      await Deno.readTextFile(`${dir}/azure-vnet-ipam.json`),
    );
    assert.deepEqual(doc.nicChanges, {
      [MAC]: { removed: { "10.240.0.6": 1_300_000 } },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseIpamState() reads a state without nicChanges, and one with them", () => {
  const base = { version: 1, lastRefresh: 0, bootId: "b", pools: {} };
  assert.equal(parseIpamState(base, "/x")?.nicChanges, undefined);
  const withChanges = {
    ...base,
    nicChanges: { [MAC]: { removed: { "10.0.0.6": 5 }, added: {} } },
  };
  assert.deepEqual(
    parseIpamState(withChanges, "/x")?.nicChanges,
    withChanges.nicChanges,
  );
  assert.throws(() => parseIpamState({ ...base, nicChanges: [] }, "/x"), {
    name: "CniError",
    code: 102,
    message: /nicChanges/,
  });
});

Deno.test("followNicChanges() applies a NIC's memory to its own IPv4 pools only", () => {
  const state = emptyIpamState("b");
  recordNicChanges(state, {
    macAddress: MAC,
    added: ["10.0.0.9", "10.9.0.9"],
    removed: ["10.0.0.6"],
  }, { now: 0 });
  // Taken back: a later change of one address replaces the earlier one.
  recordNicChanges(
    state,
    { macAddress: MAC, added: [], removed: ["10.0.0.9"] },
    {
      now: 10,
    },
  );
  assert.deepEqual(state.nicChanges, {
    [MAC]: {
      removed: { "10.0.0.6": 300_000, "10.0.0.9": 300_010 },
      added: { "10.9.0.9": 300_000 },
    },
  });
  const pools = [
    { subnet: "10.0.0.0/24", macAddress: MAC, addresses: ["10.0.0.6"] },
    {
      subnet: "10.0.0.0/24",
      macAddress: "000d3a000000",
      addresses: ["10.0.0.6"],
    },
    { subnet: "fd00::/64", macAddress: MAC, addresses: ["fd00::6"] },
  ];
  assert.deepEqual(followNicChanges(state, pools, { now: 20 }), [
    [],
    ["10.0.0.6"],
    ["fd00::6"],
  ]);
  // 10.0.0.9 is not listed: the source agrees, and the withdrawal is still
  // remembered until it expires. 10.9.0.9 is in no pool.
  assert.deepEqual(state.nicChanges, {
    [MAC]: {
      removed: { "10.0.0.6": 300_000, "10.0.0.9": 300_010 },
      added: { "10.9.0.9": 300_000 },
    },
  });
  assert.deepEqual(followNicChanges(state, pools, { now: 300_000 }), [
    ["10.0.0.6"],
    ["10.0.0.6"],
    ["fd00::6"],
  ]);
  assert.deepEqual(state.nicChanges, {
    [MAC]: { removed: { "10.0.0.9": 300_010 } },
  });
  followNicChanges(state, pools, { now: 300_010 });
  assert.equal(state.nicChanges, undefined, "all expired");
});

Deno.test("followNicChanges() forgets a change whose expiry lies more than the TTL ahead (the clock went back)", () => {
  const state = emptyIpamState("b");
  recordNicChanges(state, {
    macAddress: MAC,
    added: ["10.0.0.9"],
    removed: ["10.0.0.6"],
  }, { now: 1_000_000 });
  const pools = [
    { subnet: "10.0.0.0/24", macAddress: MAC, addresses: ["10.0.0.6"] },
  ];
  // At the time of the change, the memory holds (expiry exactly one TTL on).
  assert.deepEqual(
    followNicChanges(structuredClone(state), pools, {
      now: 1_000_000,
    }),
    [["10.0.0.9"]],
  );
  // The wall clock is stepped back an hour: without an upper bound the
  // memory would last that hour plus the TTL.
  assert.deepEqual(
    followNicChanges(state, pools, { now: 1_000_000 - 3_600_000 }),
    [["10.0.0.6"]],
  );
  assert.equal(state.nicChanges, undefined, "forgotten");
  // recordNicChanges() drops such entries of other NICs too.
  const other = emptyIpamState("b");
  recordNicChanges(
    other,
    { macAddress: MAC, added: [], removed: ["10.0.0.6"] },
    {
      now: 1_000_000,
    },
  );
  recordNicChanges(other, {
    macAddress: "000d3a000000",
    added: [],
    removed: ["10.0.0.7"],
  }, { now: 1_000_000 - 3_600_000 });
  assert.deepEqual(Object.keys(other.nicChanges ?? {}), ["000d3a000000"]);
});

Deno.test("followNicChanges() keeps a withdrawal until it expires, so an older snapshot merged after a newer one does not bring the address back", () => {
  const state = emptyIpamState("b");
  recordNicChanges(
    state,
    { macAddress: MAC, added: [], removed: ["10.0.0.6"] },
    { now: 0 },
  );
  const snapshot = (addresses: string[]) => [
    { subnet: "10.0.0.0/24", macAddress: MAC, addresses },
  ];
  // With the agent down, two plugin processes query the source apart: the
  // newer answer (.6 gone) is merged first, the older (.6 listed) after.
  assert.deepEqual(
    followNicChanges(state, snapshot(["10.0.0.5"]), { now: 10 }),
    [["10.0.0.5"]],
  );
  assert.deepEqual(
    followNicChanges(state, snapshot(["10.0.0.5", "10.0.0.6"]), { now: 20 }),
    [["10.0.0.5"]],
    "the older snapshot does not give .6 back",
  );
  assert.deepEqual(state.nicChanges, {
    [MAC]: { removed: { "10.0.0.6": 300_000 } },
  });
  // It expires as before.
  assert.deepEqual(
    followNicChanges(state, snapshot(["10.0.0.5", "10.0.0.6"]), {
      now: 300_000,
    }),
    [["10.0.0.5", "10.0.0.6"]],
  );
  assert.equal(state.nicChanges, undefined);
});
