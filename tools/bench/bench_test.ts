import assert from "node:assert/strict";
import { benchPlan } from "./bench.ts";

Deno.test("benchPlan() runs transparent mode in every burst unless told a subset", async (t) => {
  await t.step("default: the bursts, full and --quick", () => {
    assert.deepEqual(benchPlan({}, {})?.transparentBursts, [30, 110, 250]);
    assert.deepEqual(benchPlan({ quick: true }, {})?.transparentBursts, [10]);
    assert.deepEqual(
      benchPlan({ bursts: "5,7" }, {})?.transparentBursts,
      [5, 7],
    );
  });
  await t.step("a subset from the option, or else the environment", () => {
    assert.deepEqual(
      benchPlan({ "transparent-bursts": "250" }, {
        VNET_BENCH_TRANSPARENT_BURSTS: "30",
      })?.transparentBursts,
      [250],
    );
    assert.deepEqual(
      benchPlan({}, { VNET_BENCH_TRANSPARENT_BURSTS: "30,250" })
        ?.transparentBursts,
      [30, 250],
    );
  });
  await t.step("an empty list skips its bursts", () => {
    assert.deepEqual(
      benchPlan({ "transparent-bursts": "" }, {})?.transparentBursts,
      [],
    );
    assert.deepEqual(
      benchPlan({}, { VNET_BENCH_TRANSPARENT_BURSTS: "" })?.transparentBursts,
      [],
    );
  });
  await t.step(
    "a size outside the bursts or not a positive integer is refused",
    () => {
      assert.equal(benchPlan({ "transparent-bursts": "20" }, {}), undefined);
      assert.equal(
        benchPlan({ bursts: "10", "transparent-bursts": "10,20" }, {}),
        undefined,
      );
      assert.equal(benchPlan({ "transparent-bursts": "0" }, {}), undefined);
      assert.equal(
        benchPlan({}, { VNET_BENCH_TRANSPARENT_BURSTS: "x" }),
        undefined,
      );
    },
  );
  await t.step("the existing bounds still work", () => {
    const plan = benchPlan({ runs: "7" }, {
      VNET_BENCH_BURSTS: "10,20",
      VNET_BENCH_LOAD: "20,5",
      VNET_BENCH_LOAD_RUNS: "3",
      VNET_BENCH_STARTUP_ROUNDS: "2",
      VNET_BENCH_WARM_PODS: "0",
    });
    assert.deepEqual(plan, {
      runs: 7,
      bursts: [10, 20],
      transparentBursts: [10, 20],
      load: [5, 20],
      loadRuns: 3,
      startupRounds: 2,
      warmPods: 0,
    });
  });
});
