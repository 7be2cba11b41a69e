/**
 * `dist/azure-vnet-agent` reconciles on start (#14): with leftovers on the
 * node (the kernel objects and reservation of an ADD whose record was never
 * written, a stray `azv` veth on the bridge, a record whose pod netns went
 * behind the plugin's back, the debris of an ADD killed at a random
 * moment), the agent removes them before it listens, logs what it
 * removed, and the recorded pod keeps its network.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { assertStateMatchesKernel } from "../_support/azure_node.ts";
import {
  AZURE_VNET_DIST,
  AzureNode,
  ip,
  links,
  logLines,
  resultIp,
  startNodeAgent,
} from "../../tools/testbed/mod.ts";

Deno.test("dist/azure-vnet-agent removes leftovers on start and keeps the recorded pods", async () => {
  requireRoot();
  await using n = await AzureNode.create("10.98.0.0/16");
  n.argv = [AZURE_VNET_DIST];
  const [live, gone, unrecorded, killed] = await n.pods(4);
  const conf = n.conf(8);
  {
    await using agent = await startNodeAgent(n);
    for (
      const [id, pod] of [["live", live], ["gone", gone], [
        "lost",
        unrecorded,
      ]] as const
    ) {
      const r = await n.run("ADD", conf, n.env(id, pod));
      assert.equal(r.code, 0, r.stdout);
    }
    assert.equal((await agent.stop()).code, 0);
  }
  const before = await n.state();
  const lostVeth = before.endpoints["lost/eth0"]?.hostVeth;
  const goneVeth = before.endpoints["gone/eth0"]?.hostVeth;
  // An ADD that died before writing its record: veth, neighbour, rules and
  // reservation, no record.
  await Deno.writeTextFile(
    n.statePath,
    JSON.stringify({
      ...before,
      endpoints: Object.fromEntries(
        Object.entries(before.endpoints).filter(([k]) => k !== "lost/eth0"),
      ),
    }),
  );
  // A stray veth on the bridge; a pod netns deleted behind our back.
  await ip(
    ["link", "add", "azv00000000abc", "type", "veth", "peer", "name", "x0"],
    n.node.name,
  );
  await ip(["link", "set", "azv00000000abc", "master", "azure0"], n.node.name);
  await gone?.[Symbol.asyncDispose]();
  // A fallback ADD killed at a random moment (no agent listens).
  const add = n.spawn("ADD", conf, n.env("killed", killed));
  await new Promise((r) => setTimeout(r, 20 + Math.random() * 250));
  try {
    add.child.kill("SIGKILL");
  } catch {
    // It finished first: its record is there, which is fine too.
  }
  await add.done.catch(() => undefined);
  await assert.rejects(assertStateMatchesKernel(n), "leftovers are there");

  await using _agent = await startNodeAgent(n);
  const eps = await assertStateMatchesKernel(n);
  const names = (await links(n.node.name)).map((l) => l.ifname);
  for (const v of [lostVeth, goneVeth, "azv00000000abc"]) {
    assert.ok(v !== undefined && !names.includes(v), `${v} removed`);
  }
  assert.ok(eps.has("live/eth0"), "the live pod's record is kept");
  assert.ok(!eps.has("gone/eth0") && !eps.has("lost/eth0"));
  assert.ok(await live?.ping(n.addr(1)), "the live pod reaches the gateway");
  const reconciled = (await logLines(n.dir, "azure-vnet-agent.log")).filter((
    l,
  ) => l.includes("Reconciled"));
  assert.equal(reconciled.length, 2, reconciled.join("\n"));
  assert.match(reconciled[0] ?? "", /nothing to remove/);
  assert.match(reconciled[1] ?? "", /veth azv00000000abc: deleted/);
  assert.match(reconciled[1] ?? "", /endpoint gone\/eth0: removed/);
  const removed = (await logLines(n.dir, "azure-vnet.log")).filter((l) =>
    l.includes("Reconcile:")
  );
  assert.ok(
    removed.some((l) => l.includes(`"veth" "${lostVeth}"`)),
    removed.join("\n"),
  );
  // The agent serves on the clean node.
  const again = await n.run("ADD", conf, n.env("again", unrecorded));
  assert.equal(again.code, 0, again.stdout);
  assert.ok(resultIp(again) !== undefined);
  assert.equal((await assertStateMatchesKernel(n)).size, eps.size + 1);
});
