/**
 * `dist/azure-vnet-agent` reconciles on start (#14): with leftovers on the
 * node (the kernel objects and reservation of an ADD whose record was never
 * written, a stray `azv` veth on the bridge, a record whose pod netns went
 * behind the plugin's back, the debris of an ADD killed at a random
 * moment), the agent removes them before it listens, logs what it
 * removed, and the recorded pod keeps its network. A reconcile that fails
 * leaves the agent serving but not ready (`probe --ready`) until a retry
 * succeeds.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { assertStateMatchesKernel } from "../_support/azure_node.ts";
import {
  AZURE_VNET_AGENT_DIST,
  AZURE_VNET_DIST,
  AzureNode,
  ip,
  links,
  logLines,
  resultIp,
  spawnProcess,
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

Deno.test("dist/azure-vnet-agent with a failed startup reconcile serves, fails readiness (not liveness) and retries until it succeeds", async () => {
  requireRoot();
  await using n = await AzureNode.create("10.92.0.0/16");
  n.argv = [AZURE_VNET_DIST];
  // A corrupt state file: every reconcile fails (code 102) until repaired.
  await Deno.writeTextFile(n.statePath, "{not json");
  await using agent = await startNodeAgent(n);
  const probe = async (...flags: string[]) =>
    await spawnProcess([AZURE_VNET_AGENT_DIST, "probe", ...flags], {
      netns: n.node.name,
      env: { AZURE_VNET_STATE_DIR: n.dir },
    }).done;
  const live = await probe();
  assert.equal(live.code, 0, live.stderr);
  const ready = await probe("--ready");
  assert.equal(ready.code, 1, ready.stdout);
  assert.match(
    ready.stderr,
    /answers but is not ready: reconcile: the startup reconcile failed \(.*azure-vnet\.json.*\) after 1 tries; the next in 5 s/,
  );
  // Repaired (`deno task state repair` would rebuild it; none is empty).
  await Deno.remove(n.statePath);
  const end = Date.now() + 20_000;
  let last = ready;
  while (last.code !== 0 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 500));
    last = await probe("--ready");
  }
  assert.equal(last.code, 0, last.stderr);
  assert.match(last.stdout, /answers and is ready/);
  assert.equal((await agent.stop()).code, 0);
  const log = (await logLines(n.dir, "azure-vnet-agent.log")).join("\n");
  assert.match(log, /Not ready: the startup reconcile failed \(try 1\)/);
  assert.match(log, /Ready: the startup reconcile succeeded at try 2/);
});
