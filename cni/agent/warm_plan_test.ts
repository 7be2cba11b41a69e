import assert from "node:assert/strict";
import { type NicIpConfig, planWarmPool } from "./warm_plan.ts";

/** A NIC with the primary 10.0.0.4 and secondaries 10.0.0.5.. */
function nic(secondaries: number, pending = 0): NicIpConfig[] {
  const out: NicIpConfig[] = [
    { name: "ipconfig1", address: "10.0.0.4", primary: true },
  ];
  for (let i = 0; i < secondaries; i++) {
    out.push({
      name: `ipconfig${i + 2}`,
      address: `10.0.0.${i + 5}`,
      primary: false,
    });
  }
  for (let i = 0; i < pending; i++) {
    out.push({ name: `ipconfig${secondaries + i + 2}`, primary: false });
  }
  return out;
}

function used(...last: number[]): Set<string> {
  return new Set(last.map((n) => `10.0.0.${n}`));
}

const band = { warmMin: 2, warmMax: 6, maxIpConfigs: 256 };

Deno.test("planWarmPool() does nothing inside the band", () => {
  assert.deepEqual(
    planWarmPool({ ...band, ipConfigs: nic(4), inUse: used(5) }),
    { free: 3, add: [], remove: [], atLimit: false },
  );
});

Deno.test("planWarmPool() grows to the middle of the band in one batch", () => {
  const plan = planWarmPool({ ...band, ipConfigs: nic(3), inUse: used(5, 6) });
  assert.equal(plan.free, 1);
  assert.deepEqual(plan.add, ["ipconfig5", "ipconfig6", "ipconfig7"]);
  assert.deepEqual(plan.remove, []);
});

Deno.test("planWarmPool() counts an ipconfig still without an address as free", () => {
  const plan = planWarmPool({ ...band, ipConfigs: nic(1, 1), inUse: used(5) });
  assert.equal(plan.free, 1);
  assert.deepEqual(plan.add, ["ipconfig4", "ipconfig5", "ipconfig6"]);
});

Deno.test("planWarmPool() fills gaps in the names", () => {
  const ipConfigs = nic(2).filter((c) => c.name !== "ipconfig2");
  const plan = planWarmPool({ ...band, ipConfigs, inUse: used(6) });
  assert.deepEqual(plan.add, [
    "ipconfig2",
    "ipconfig4",
    "ipconfig5",
    "ipconfig6",
  ]);
});

Deno.test("planWarmPool() respects maxIpConfigs and says it is at the limit", async (t) => {
  await t.step("room for part", () => {
    const plan = planWarmPool({
      ...band,
      maxIpConfigs: 5,
      ipConfigs: nic(3),
      inUse: used(5, 6, 7),
    });
    assert.deepEqual(plan.add, ["ipconfig5"]);
    assert.ok(plan.atLimit === true, "at the limit");
  });
  await t.step("no room", () => {
    const plan = planWarmPool({
      ...band,
      maxIpConfigs: 4,
      ipConfigs: nic(3),
      inUse: used(5, 6, 7),
    });
    assert.deepEqual(plan, { free: 0, add: [], remove: [], atLimit: true });
  });
  await t.step("256 per NIC", () => {
    const inUse = new Set(
      Array.from(
        { length: 254 },
        (_, i) => `10.0.${(i + 5) >> 8}.${(i + 5) & 255}`,
      ),
    );
    const ipConfigs: NicIpConfig[] = [
      { name: "ipconfig1", address: "10.0.0.4", primary: true },
      ...[...inUse].map((address, i) => ({
        name: `ipconfig${i + 2}`,
        address,
        primary: false,
      })),
    ];
    const plan = planWarmPool({ ...band, ipConfigs, inUse });
    assert.deepEqual(plan.add, ["ipconfig256"]);
    assert.ok(plan.atLimit === true, "at the limit");
  });
});

Deno.test("planWarmPool() shrinks from the highest free address, never the primary or one in use", () => {
  const plan = planWarmPool({
    ...band,
    ipConfigs: nic(10, 1),
    inUse: used(14, 6),
  });
  // Free: 7 addressed (5, 7..13) + 1 pending = 9 > 6; down to 4: remove 5.
  assert.equal(plan.free, 9);
  assert.deepEqual(plan.remove, [
    "ipconfig10",
    "ipconfig9",
    "ipconfig8",
    "ipconfig7",
    "ipconfig6",
  ]);
  assert.deepEqual(plan.add, []);
});

Deno.test("planWarmPool() removes sticky addresses last", () => {
  const plan = planWarmPool({
    ...band,
    ipConfigs: nic(8),
    inUse: used(),
    remembered: used(12, 11),
  });
  // Free 8 > 6; down to 4: remove 4, the highest not remembered first.
  // 10.0.0.k is ipconfig(k-3): 10, 9, 8, 7 go; 11 and 12 stay.
  assert.deepEqual(plan.remove, [
    "ipconfig7",
    "ipconfig6",
    "ipconfig5",
    "ipconfig4",
  ]);
});

Deno.test("planWarmPool() neither counts nor removes IPv6 ipconfigs, but they take room (#15)", () => {
  const v6 = (k: number): NicIpConfig => ({
    name: `ipv6config${k}`,
    address: `fd00::${k + 3}`,
    primary: false,
    ipv6: true,
  });
  const grow = planWarmPool({
    ...band,
    maxIpConfigs: 6,
    ipConfigs: [...nic(2), v6(1), v6(2)],
    inUse: used(5, 6),
  });
  assert.deepEqual(grow, {
    free: 0,
    add: ["ipconfig4"],
    remove: [],
    atLimit: true,
  });
  const shrink = planWarmPool({
    ...band,
    ipConfigs: [...nic(7), ...[1, 2, 3, 4, 5, 6, 7, 8].map(v6)],
    inUse: used(),
  });
  assert.equal(shrink.free, 7);
  assert.deepEqual(shrink.remove, ["ipconfig8", "ipconfig7", "ipconfig6"]);
});
