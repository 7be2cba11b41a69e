import assert from "node:assert/strict";
import { Readiness } from "./readiness.ts";
import { ReconcileRetry } from "./reconcile_retry.ts";

/** Polls until `ok()` or fails after `ms`. */
async function until(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 2));
  }
}

Deno.test("ReconcileRetry: a failed reconcile makes the agent not ready until a retry succeeds", async () => {
  const readiness = new Readiness();
  const outcomes = [
    new Error("Timed out waiting for the lock on azure-vnet.json"),
    new Error("still locked"),
  ];
  let tries = 0;
  const failures: { tries: number; nextMs: number }[] = [];
  let recovered = 0;
  const retry = new ReconcileRetry({
    reconcile: () => {
      const err = outcomes[tries++];
      return err === undefined ? Promise.resolve() : Promise.reject(err);
    },
    readiness,
    delaysMs: [20, 30],
    onFailure: (f) => failures.push({ tries: f.tries, nextMs: f.nextMs }),
    onRecovered: (n) => recovered = n,
  });
  try {
    await retry.start();
    assert.equal(
      readiness.reason,
      "reconcile: the startup reconcile failed (Timed out waiting for the lock on azure-vnet.json) after 1 tries; the next in 0.02 s",
    );
    await until(() => tries === 2);
    await until(() => failures.length === 2);
    assert.match(readiness.reason ?? "", /\(still locked\) after 2 tries/);
    await until(() => readiness.ready);
    assert.equal(tries, 3);
    assert.deepEqual(failures, [
      { tries: 1, nextMs: 20 },
      { tries: 2, nextMs: 30 },
    ]);
    assert.equal(recovered, 3);
  } finally {
    await retry.close();
  }
});

Deno.test("ReconcileRetry: a first success is ready at once; close() stops the retries", async () => {
  const readiness = new Readiness();
  const ok = new ReconcileRetry({
    reconcile: () => Promise.resolve(),
    readiness,
  });
  await ok.start();
  assert.ok(readiness.ready);
  await ok.close();
  let tries = 0;
  const failing = new ReconcileRetry({
    reconcile: () => {
      tries++;
      return Promise.reject(new Error("corrupt"));
    },
    readiness,
    delaysMs: [10],
  });
  await failing.start();
  assert.ok(!readiness.ready);
  await failing.close();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(tries, 1, "no retry after close()");
});
