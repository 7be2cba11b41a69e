import assert from "node:assert/strict";
import { FakeStore } from "./_fake_store.ts";
import { fakeSource, SOURCE_MAC, wireserverConfig } from "./_testing.ts";
import { readBootId, sameBoot } from "./boot_id.ts";
import { IpamEngine } from "./engine.ts";

/**
 * A node booted at `bootSec` (epoch seconds) whose boot time sits 0.4 s
 * before a half-minute: `now/1000 - osUptime()` (whole seconds) crosses it
 * within one second, which rounded to the minute used to flip.
 */
const MINUTE = 29_928_048;
const BOOT_SEC = MINUTE * 60 + 29.6;

/** The boot id read at `sinceBootMs` after boot, with injected clocks. */
function bootIdAt(sinceBootMs: number): string {
  const nowMs = BOOT_SEC * 1000 + sinceBootMs;
  return readBootId({
    now: () => nowMs,
    uptime: () => Math.floor(sinceBootMs / 1000),
  });
}

Deno.test("readBootId() wobbles across a minute boundary, and sameBoot() takes both as one boot", () => {
  const early = bootIdAt(100_200);
  const late = bootIdAt(100_900);
  assert.deepEqual([early, late], [
    `boot-minute-${MINUTE}`,
    `boot-minute-${MINUTE + 1}`,
  ]);
  assert.ok(sameBoot(early, late));
  assert.ok(sameBoot(late, early));
});

Deno.test("sameBoot() tells a reboot, and other forms only by equality", async (t) => {
  const cases: [string, string, string, boolean][] = [
    ["same minute", "boot-minute-10", "boot-minute-10", true],
    ["next minute (the wobble)", "boot-minute-10", "boot-minute-11", true],
    ["two minutes on: a reboot", "boot-minute-10", "boot-minute-12", false],
    ["a reboot long after", "boot-minute-10", "boot-minute-9000", false],
    ["equal other ids", "boot-1", "boot-1", true],
    ["other ids", "boot-1", "boot-2", false],
    ["an id unknown (empty) vs one", "", "boot-minute-10", false],
    ["both unknown", "", "", true],
  ];
  for (const [name, a, b, same] of cases) {
    await t.step(name, () => assert.equal(sameBoot(a, b), same));
  }
});

Deno.test("IpamEngine.reserve() does not refresh when the boot id wobbles within one boot", async () => {
  const { source, fetch } = fakeSource([
    "10.240.0.5",
    "10.240.0.6",
    "10.240.0.7",
    "10.240.0.8",
  ]);
  const clock = { sinceBootMs: 100_200 };
  const e = new IpamEngine({
    store: new FakeStore(),
    fetch,
    hostMacs: () => [{ name: "eth0", mac: SOURCE_MAC }],
    now: () => BOOT_SEC * 1000 + clock.sinceBootMs,
    bootId: () => bootIdAt(clock.sinceBootMs),
    sourceRetries: 0,
  });
  const config = wireserverConfig();
  // Within the 10 s interval, the id alternating between two minutes.
  for (const [i, at] of [100_200, 100_900, 101_100, 101_950].entries()) {
    clock.sinceBootMs = at;
    await e.reserve({ containerId: `c${i}`, ifName: "eth0" }, { config });
  }
  assert.equal(source.requests, 1);
});
