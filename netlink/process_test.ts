import assert from "node:assert/strict";
import { processInfo } from "./process.ts";

Deno.test("processInfo() reads a live process's name, state and start time, and nothing of a gone one", async () => {
  const before = Date.now();
  const child = new Deno.Command("/bin/sleep", {
    args: ["60"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const after = Date.now();
  try {
    const p = processInfo(child.pid);
    assert.ok(p !== undefined);
    assert.equal(p.name, "sleep");
    assert.match(p.state, /^[RSD]$/);
    // Read to about 10 ms (clock ticks), the uptime to 10 ms.
    assert.ok(
      p.startedAt >= before - 50 && p.startedAt <= after + 50,
      `${before} <= ${p.startedAt} <= ${after}`,
    );
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
  assert.equal(processInfo(child.pid), undefined);
  assert.equal(processInfo(Deno.pid)?.name, "deno");
});

Deno.test("processInfo() refuses what is no PID", () => {
  for (const pid of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => processInfo(pid), {
      name: "RangeError",
      message: /no PID/,
    });
  }
});
