import assert from "node:assert/strict";
import { FileStore } from "./file_store.ts";
import { emptyIpamState, type IpamState } from "./state.ts";

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
