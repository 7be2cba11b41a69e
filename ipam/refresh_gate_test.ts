import assert from "node:assert/strict";
import { FakeStore } from "./_fake_store.ts";
import { fakeSource, SOURCE_MAC, wireserverConfig } from "./_testing.ts";
import { IpamEngine } from "./engine.ts";
import type { IpamEngineOptions } from "./engine.ts";
import { RefreshGate } from "./refresh_gate.ts";

const LINKS = [{ name: "eth0", mac: SOURCE_MAC }];

/** 10.240.0.5 ... 10.240.0.(4+n). */
function secondaries(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `10.240.0.${i + 5}`);
}

function engineOn(
  fetch: NonNullable<IpamEngineOptions["fetch"]>,
  extra: IpamEngineOptions = {},
): IpamEngine {
  return new IpamEngine({
    store: new FakeStore(),
    fetch,
    hostMacs: () => LINKS,
    now: () => 1_000,
    bootId: () => "b",
    sourceRetries: 0,
    sleep: () => Promise.resolve(),
    ...extra,
  });
}

/** `n` concurrent reserves, for c0 ... c(n-1): each gets its own address. */
async function reserveConcurrently(e: IpamEngine, n: number): Promise<void> {
  const config = wireserverConfig();
  const got = await Promise.all(
    Array.from(
      { length: n },
      (_, i) => e.reserve({ containerId: `c${i}`, ifName: "eth0" }, { config }),
    ),
  );
  assert.equal(new Set(got.map((r) => r.ip)).size, n);
}

Deno.test("IpamEngine.reserve() makes one source request for concurrent reserves that find a refresh due", async (t) => {
  for (const delayMs of [0, 20]) {
    await t.step(`source answering after ${delayMs} ms`, async () => {
      const { source, fetch } = fakeSource(secondaries(60), delayMs);
      const e = engineOn(fetch);
      await reserveConcurrently(e, 50);
      assert.equal(source.requests, 1);
    });
  }
  await t.step(
    "an engine per call on the state file, as the agent makes them",
    async () => {
      const { source, fetch } = fakeSource(secondaries(60), 5);
      const stateDir = await Deno.makeTempDir({ prefix: "cnitest-ipam-" });
      try {
        const config = wireserverConfig();
        const got = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            new IpamEngine({
              stateDir,
              fetch,
              hostMacs: () => LINKS,
              bootId: () => "b",
            }).reserve({ containerId: `c${i}`, ifName: "eth0" }, { config })),
        );
        assert.equal(new Set(got.map((r) => r.ip)).size, 50);
        assert.equal(source.requests, 1);
      } finally {
        await Deno.remove(stateDir, { recursive: true });
      }
    },
  );
  await t.step("on the state file, a fresh node", async () => {
    const { source, fetch } = fakeSource(secondaries(60), 5);
    const stateDir = await Deno.makeTempDir({ prefix: "cnitest-ipam-" });
    try {
      const e = new IpamEngine({
        stateDir,
        fetch,
        hostMacs: () => LINKS,
        bootId: () => "b",
      });
      await reserveConcurrently(e, 50);
      assert.equal(source.requests, 1);
    } finally {
      await Deno.remove(stateDir, { recursive: true });
    }
  });
});

Deno.test("IpamEngine.reserve() leaves a failing source alone for a few seconds while state exists", async (t) => {
  const { source, fetch } = fakeSource(secondaries(10));
  const clock = { t: 1_000 };
  const e = engineOn(fetch, { now: () => clock.t });
  const config = wireserverConfig({ queryInterval: "10" });
  let n = 0;
  const reserve = () =>
    e.reserve({ containerId: `c${n++}`, ifName: "eth0" }, { config });
  await reserve();
  assert.equal(source.requests, 1);
  source.fail = true;
  clock.t += 10_000;
  await t.step("a due refresh fails: served from the state", async () => {
    assert.equal((await reserve()).ip, "10.240.0.6");
    assert.equal(source.requests, 2);
  });
  await t.step("the next calls within 5 s do not ask again", async () => {
    clock.t += 2_000;
    await Promise.all([reserve(), reserve()]);
    clock.t += 2_999;
    await reserve();
    assert.equal(source.requests, 2);
  });
  await t.step("after 5 s it asks again, and a success ends it", async () => {
    clock.t += 1;
    source.fail = false;
    source.addresses = secondaries(12);
    await reserve();
    assert.equal(source.requests, 3);
    // Refreshed: not due again within the interval.
    clock.t += 9_999;
    assert.equal((await reserve()).ip, "10.240.0.11");
    assert.equal(source.requests, 3);
  });
});

Deno.test("IpamEngine.reserve() without state asks a failing source on every call", async () => {
  const { source, fetch } = fakeSource(secondaries(10));
  source.fail = true;
  const e = engineOn(fetch);
  const config = wireserverConfig();
  for (const id of ["a", "b"]) {
    await assert.rejects(
      e.reserve({ containerId: id, ifName: "eth0" }, { config }),
      { name: "CniError", code: 11, message: /no IPAM state exists yet/ },
    );
  }
  assert.equal(source.requests, 2);
});

Deno.test("RefreshGate.query() shares a query with the callers that asked before it completed", async (t) => {
  const clock = { t: 0 };
  const gate = new RefreshGate<number>({ now: () => clock.t, backoffMs: 100 });
  let queries = 0;
  const run = () => Promise.resolve(++queries);
  await t.step("one running query for concurrent callers", async () => {
    const ticket = gate.ticket();
    const got = await Promise.all([
      gate.query("k", run, { ticket, fallback: false }),
      gate.query("k", run, { ticket, fallback: false }),
    ]);
    assert.deepEqual(got.map((o) => o.ok && o.value), [1, 1]);
  });
  await t.step("a late caller with an old ticket gets the result", async () => {
    const got = await gate.query("k", run, { ticket: 0, fallback: false });
    assert.deepEqual(got, { ok: true, value: 1 });
  });
  await t.step("a caller whose ticket is newer asks again", async () => {
    const ticket = gate.ticket();
    const got = await gate.query("k", run, { ticket, fallback: false });
    assert.deepEqual(got, { ok: true, value: 2 });
    assert.deepEqual(
      await gate.query("other", run, { ticket, fallback: false }),
      { ok: true, value: 3 },
      "another key is another query",
    );
  });
  await t.step("a failure backs off callers with a fallback", async () => {
    const fail = () => Promise.reject(new Error("down"));
    const ticket = gate.ticket();
    const first = await gate.query("k", fail, { ticket, fallback: true });
    assert.ok(!first.ok);
    assert.ok(gate.backingOff("k"));
    const t2 = gate.ticket();
    assert.ok(
      !(await gate.query("k", run, { ticket: t2, fallback: true })).ok,
      "within the back-off: the failure again",
    );
    assert.deepEqual(
      await gate.query("k", run, { ticket: t2, fallback: false }),
      { ok: true, value: 4 },
      "no fallback: asked at once",
    );
    await gate.query("k", fail, { ticket: gate.ticket(), fallback: true });
    clock.t += 100;
    assert.ok(!gate.backingOff("k"));
    clock.t -= 200;
    assert.ok(!gate.backingOff("k"), "a clock gone back ends it");
  });
});

/**
 * A source answering after `delayMs` that honours the caller's abort
 * signal (the per-attempt timeout), as the real `fetch` does.
 */
function slowSource(delayMs: number) {
  const source = { requests: 0, delayMs };
  const { fetch: answer } = fakeSource(secondaries(10));
  const fetch = (_url: string | URL | Request, init?: RequestInit) => {
    source.requests++;
    return new Promise<Response>((resolve, reject) => {
      const timer = setTimeout(() => resolve(answer()), source.delayMs);
      init?.signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(init.signal?.reason);
      });
    });
  };
  return { source, fetch };
}

Deno.test("IpamEngine.reserve() does not share a query with a caller that asks with another timeout or retries", async () => {
  const { source, fetch } = slowSource(0);
  // Two engines on one fetch share the process's gate (no injected clock).
  const common = {
    fetch,
    hostMacs: () => LINKS,
    sleep: () => Promise.resolve(),
  };
  const stateA = new FakeStore();
  await new IpamEngine({ ...common, store: stateA, bootId: () => "b1" })
    .reserve({ containerId: "a0", ifName: "eth0" }, {
      config: wireserverConfig(),
    });
  assert.equal(source.requests, 1);
  source.delayMs = 300;
  // A has state and asks with a 0.1 s timeout and no retry (its refresh is
  // due: the boot changed); B has no state and asks with 1 s and 2 retries.
  const a = new IpamEngine({ ...common, store: stateA, bootId: () => "b2" })
    .reserve({ containerId: "a1", ifName: "eth0" }, {
      config: wireserverConfig({ queryTimeout: "0.1" }),
    });
  await new Promise((r) => setTimeout(r, 10));
  const b = new IpamEngine({
    ...common,
    store: new FakeStore(),
    bootId: () => "b2",
    sourceRetries: 2,
  }).reserve({ containerId: "b1", ifName: "eth0" }, {
    config: wireserverConfig({ queryTimeout: "1" }),
  });
  const [gotA, gotB] = await Promise.allSettled([a, b]);
  assert.equal(gotA.status, "fulfilled", "A falls back on its state");
  assert.deepEqual(
    gotB.status === "fulfilled" ? gotB.value.ip : gotB.reason,
    "10.240.0.5",
    "B's own query succeeds",
  );
  assert.equal(source.requests, 3);
});
