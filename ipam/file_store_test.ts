import assert from "node:assert/strict";
import { FileStore } from "./file_store.ts";
import { emptyIpamState, type IpamState, readIpamState } from "./state.ts";

Deno.test("FileStore.update() runs concurrent updates in order, each on a private copy, and keeps only what each returned", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/azure-vnet-ipam.json`;
  try {
    const a = new FileStore(path);
    const b = new FileStore(path);
    const seen: number[] = [];
    const bump = (i: number) => {
      return (state: IpamState | undefined) => {
        const s = state ?? emptyIpamState("boot");
        seen.push(i);
        if (i === 3) {
          s.lastRefresh += 100;
          throw new RangeError(`update ${i} fails`);
        }
        if (i === 5) {
          // Changed, not returned: must not be written by the others.
          s.lastRefresh += 1000;
          return { value: -1 };
        }
        s.lastRefresh += 1;
        return { value: s.lastRefresh, next: s };
      };
    };
    const calls = Array.from(
      { length: 10 },
      (_, i) => (i % 2 === 0 ? a : b).update(bump(i)),
    );
    const settled = await Promise.allSettled(calls);
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(
      settled.map((r) => r.status === "fulfilled" ? r.value : "rejected"),
      [1, 2, 3, "rejected", 4, -1, 5, 6, 7, 8],
    );
    const rejected = settled[3];
    assert.ok(rejected?.status === "rejected");
    assert.match(String(rejected.reason), /update 3 fails/);
    const saved = JSON.parse(await Deno.readTextFile(path)) as IpamState;
    assert.equal(saved.lastRefresh, 8);
    assert.equal(await a.update((s) => ({ value: s?.lastRefresh })), 8);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FileStore.update() fails every update of a batch with a corrupt file's error (102), and the next batch reads afresh", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/azure-vnet-ipam.json`;
  try {
    await Deno.writeTextFile(path, "{");
    const store = new FileStore(path);
    const calls = [1, 2, 3].map(() =>
      store.update((s) => ({ value: s?.lastRefresh }))
    );
    for (const r of await Promise.allSettled(calls)) {
      assert.equal(r.status, "rejected");
      assert.equal((r as PromiseRejectedResult).reason.code, 102);
    }
    await Deno.writeTextFile(
      path,
      JSON.stringify({ ...emptyIpamState("boot"), lastRefresh: 7 }),
    );
    assert.equal(await store.update((s) => ({ value: s?.lastRefresh })), 7);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FileStore.update() and readIpamState() share one frozen state while the file holds what was written (#14)", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/azure-vnet-ipam.json`;
  try {
    const store = new FileStore(path);
    const pool = {
      subnet: "10.0.0.0/24",
      gateway: "10.0.0.1",
      macAddress: "*",
      priority: 0,
      primaryIps: ["10.0.0.4"],
      addresses: { "10.0.0.5": {}, "10.0.0.6": {} },
    };
    await store.update(() => ({
      value: undefined,
      next: { ...emptyIpamState("boot"), pools: { [pool.subnet]: pool } },
    }));
    const first = await readIpamState(path);
    await store.update((s) => {
      assert.ok(s !== undefined);
      const p = s.pools[pool.subnet];
      assert.ok(p !== undefined);
      p.addresses["10.0.0.5"] = { containerId: "c", ifName: "eth0" };
      return { value: undefined, next: s };
    });
    const second = await readIpamState(path);
    assert.equal(await readIpamState(path), second);
    assert.equal(
      second?.pools[pool.subnet]?.addresses["10.0.0.6"],
      first?.pools[pool.subnet]?.addresses["10.0.0.6"],
    );
    assert.deepEqual(
      JSON.parse(await Deno.readTextFile(path)),
      JSON.parse(JSON.stringify(second)),
    );
    // Editing a shared record instead of replacing it throws.
    await assert.rejects(
      store.update((s) => {
        assert.ok(s !== undefined);
        const rec = s.pools[pool.subnet]?.addresses["10.0.0.6"];
        if (rec !== undefined) rec.containerId = "d";
        return { value: undefined, next: s };
      }),
      TypeError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
