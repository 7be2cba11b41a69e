import assert from "node:assert/strict";
import { endpointKey, hostVethName } from "./names.ts";

Deno.test("hostVethName() is deterministic, distinct and fits 15 bytes", async () => {
  const a = await hostVethName("azure", { containerId: "c1", ifName: "eth0" });
  const b = await hostVethName("azure", { containerId: "c1", ifName: "eth0" });
  const c = await hostVethName("azure", { containerId: "c1", ifName: "eth1" });
  const d = await hostVethName("azure", { containerId: "c2", ifName: "eth0" });
  const e = await hostVethName("azure2", { containerId: "c1", ifName: "eth0" });
  assert.equal(a, b);
  assert.equal(new Set([a, c, d, e]).size, 4);
  for (const n of [a, c, d, e]) {
    assert.match(n, /^azv[0-9a-f]{11}$/);
    assert.ok(n.length <= 15);
  }
});

Deno.test("hostVethName() separates the inputs so concatenations differ", async () => {
  const a = await hostVethName("ab", { containerId: "c", ifName: "eth0" });
  const b = await hostVethName("a", { containerId: "bc", ifName: "eth0" });
  assert.notEqual(a, b);
});

Deno.test("endpointKey() keeps the full container id", () => {
  const id = "f".repeat(64);
  assert.equal(endpointKey(id, "eth0"), `${id}/eth0`);
});
