import assert from "node:assert/strict";
import { ARM_HOSTS, TARGETS } from "./targets.ts";

Deno.test("TARGETS grant ARM only to the agent, never to the plugins", () => {
  const byName = new Map(TARGETS.map((t) => [t.name, t.permissions]));
  assert.deepEqual(byName.get("azure-vnet-agent")?.netHosts, ARM_HOSTS);
  assert.equal(byName.get("azure-vnet")?.netHosts, undefined);
  assert.equal(byName.get("azure-vnet-ipam")?.netHosts, undefined);
  assert.ok(byName.get("azure-vnet-agent")?.sys.includes("osRelease"));
  assert.ok(!byName.get("azure-vnet")?.sys.includes("osRelease"));
  assert.ok(ARM_HOSTS.every((h) => /^management\.[a-z.]+:443$/.test(h)));
});
