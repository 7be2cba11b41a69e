/**
 * Reliability of the agent path (#14): bursts of concurrent ADDs through
 * `dist/azure-vnet` while `dist/azure-vnet-agent` is killed (kill -9) at a
 * random moment, restarted (SIGTERM, then a new agent), or hung (a listener
 * that accepts and never answers; a real agent frozen by SIGSTOP).
 *
 * Every call ends with one CNI document: a result or an error object.
 * After the runtime's DEL of each failed ADD, with the agent back (its
 * reconcile on start) or the fallback path, the state matches the kernel,
 * no IP is held twice, each successful ADD's address is the recorded one,
 * and after DEL of every pod nothing is left: no record, reservation,
 * veth, neighbour or per-pod rule.
 *
 * Trials and burst size: `VNET_AGENT_TRIALS` (default 2) and
 * `VNET_AGENT_BURST` (default 12).
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { assertStateMatchesKernel } from "../_support/azure_node.ts";
import {
  agentSocket,
  AZURE_VNET_DIST,
  AzureNode,
  type CniRun,
  links,
  mapLimit,
  type Netns,
  resultIp,
  type RunningAgent,
  startNodeAgent,
} from "../../tools/testbed/mod.ts";

const TRIALS = Number(Deno.env.get("VNET_AGENT_TRIALS") ?? "2");
const BURST = Number(Deno.env.get("VNET_AGENT_BURST") ?? "12");

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A finished call printed one CNI document: a result or an error. */
function assertCniOutcome(run: CniRun, what: string): void {
  const text = `${what}: code ${run.code}, ${run.stdout} ${run.stderr}`;
  assert.equal(run.signal, null, text);
  if (run.code === 0) {
    assert.ok(resultIp(run) !== undefined, text);
  } else {
    assert.equal(run.code, 1, text);
    assert.equal(typeof run.json?.code, "number", text);
    assert.equal(typeof run.json?.msg, "string", text);
  }
}

/** One burst: `BURST` concurrent ADDs, each pod its own id. */
interface Burst {
  ids: string[];
  runs: Promise<CniRun[]>;
}

function burst(
  n: AzureNode,
  spec: { conf: unknown; pods: Netns[]; tag: string },
): Burst {
  const ids = spec.pods.map((_, i) => `${spec.tag}-${i}`);
  const runs = Promise.all(
    spec.pods.map((pod, i) =>
      n.run("ADD", spec.conf, n.env(ids[i] ?? "", pod))
    ),
  );
  return { ids, runs };
}

/**
 * What a runtime does after a burst: DEL of every failed ADD. Then the
 * state matches the kernel, and each successful ADD kept its address.
 */
async function settle(
  n: AzureNode,
  spec: { conf: unknown; pods: Netns[]; ids: string[]; runs: CniRun[] },
): Promise<void> {
  await mapLimit(spec.runs.length, async (i) => {
    if (spec.runs[i]?.code === 0) return;
    const del = await n.run(
      "DEL",
      spec.conf,
      n.env(spec.ids[i] ?? "", spec.pods[i]),
    );
    assert.equal(del.code, 0, `DEL ${spec.ids[i]}: ${del.stdout}`);
  });
  const byKey = await assertStateMatchesKernel(n);
  spec.runs.forEach((r, i) => {
    if (r.code !== 0) return;
    assert.equal(
      byKey.get(`${spec.ids[i]}/eth0`),
      resultIp(r)?.split("/")[0],
      `the recorded address of ${spec.ids[i]} is the one it was given`,
    );
  });
}

/** DEL of every pod; then nothing is left. */
async function cleanUp(
  n: AzureNode,
  spec: { conf: unknown; pods: Netns[]; ids: string[] },
): Promise<void> {
  await mapLimit(spec.ids.length, async (i) => {
    const del = await n.run(
      "DEL",
      spec.conf,
      n.env(spec.ids[i] ?? "", spec.pods[i]),
    );
    assert.equal(del.code, 0, `DEL ${spec.ids[i]}: ${del.stdout}`);
  });
  assert.equal((await assertStateMatchesKernel(n)).size, 0);
  const veths = (await links(n.node.name)).filter((l) =>
    l.ifname.startsWith("azv")
  );
  assert.deepEqual(veths, [], "no veth left");
  assert.doesNotMatch(await n.ipamState(), /"containerId"/, "no reservation");
}

/** A node on `subnet` with the network made and `BURST` pods. */
async function node(subnet: string): Promise<{
  n: AzureNode;
  conf: Record<string, unknown>;
  pods: Netns[];
}> {
  const n = await AzureNode.create(subnet);
  n.argv = [AZURE_VNET_DIST];
  const conf = n.conf(BURST + 8);
  const pods = await n.pods(BURST);
  // The network exists before the bursts (its creation is tested elsewhere).
  const first = await n.run("ADD", conf, n.env("first", pods[0]));
  assert.equal(first.code, 0, first.stdout);
  const del = await n.run("DEL", conf, n.env("first", pods[0]));
  assert.equal(del.code, 0, del.stdout);
  return { n, conf, pods };
}

Deno.test("agent killed (kill -9) at a random moment of a burst: every call answers, nothing leaks", async () => {
  requireRoot();
  const { n, conf, pods } = await node("10.100.0.0/16");
  await using _n = n;
  for (let trial = 0; trial < TRIALS; trial++) {
    const agent = await startNodeAgent(n);
    const b = burst(n, { conf, pods, tag: `kill${trial}` });
    await sleep(Math.random() * 600);
    await agent.kill();
    const runs = await b.runs;
    runs.forEach((r, i) => assertCniOutcome(r, `ADD ${b.ids[i]}`));
    // Every other trial the agent comes back (and reconciles); otherwise
    // the fallback path serves the DELs.
    const back: RunningAgent | undefined = trial % 2 === 0
      ? await startNodeAgent(n)
      : undefined;
    await settle(n, { conf, pods, ids: b.ids, runs });
    await cleanUp(n, { conf, pods, ids: b.ids });
    await back?.stop();
  }
});

Deno.test("agent restarted (SIGTERM, new agent) during a burst: every ADD succeeds, nothing leaks", async () => {
  requireRoot();
  const { n, conf, pods } = await node("10.101.0.0/16");
  await using _n = n;
  let agent = await startNodeAgent(n);
  for (let trial = 0; trial < TRIALS; trial++) {
    const b = burst(n, { conf, pods, tag: `restart${trial}` });
    await sleep(Math.random() * 400);
    const stopped = await agent.stop();
    assert.equal(stopped.code, 0, stopped.stderr);
    agent = await startNodeAgent(n);
    const runs = await b.runs;
    runs.forEach((r, i) => {
      assertCniOutcome(r, `ADD ${b.ids[i]}`);
      assert.equal(
        r.code,
        0,
        `a drained or fallback ADD succeeds: ${r.stdout}`,
      );
    });
    await settle(n, { conf, pods, ids: b.ids, runs });
    await cleanUp(n, { conf, pods, ids: b.ids });
  }
  await agent.stop();
});

Deno.test("a hung agent: the call ends when the runtime kills it, and DEL or the next agent recovers", async (t) => {
  requireRoot();
  const { n, conf, pods } = await node("10.102.0.0/16");
  await using _n = n;
  const [p0, p1, p2] = pods;

  await t.step("a listener that accepts and never answers", async () => {
    const held: Deno.Conn[] = [];
    const listener = Deno.listen({
      transport: "unix",
      path: agentSocket(n.dir),
    });
    const accepting = (async () => {
      for await (const c of listener) held.push(c);
    })();
    const { child, done } = n.spawn("ADD", conf, n.env("hung0", p0));
    const early = await Promise.race([done.then(() => true), sleep(1500)]);
    assert.ok(early !== true, "the plugin waits for the agent's answer");
    child.kill("SIGKILL"); // the runtime's timeout
    assert.equal((await done).signal, "SIGKILL");
    assert.equal(held.length, 1, "the request reached the hung agent");
    listener.close();
    await accepting.catch(() => {});
    for (const c of held) c.close();
    await Deno.remove(agentSocket(n.dir)).catch(() => {});
    const del = await n.run("DEL", conf, n.env("hung0", p0));
    assert.equal(del.code, 0, del.stdout);
    assert.equal((await assertStateMatchesKernel(n)).size, 0);
  });

  await t.step(
    "a real agent frozen (SIGSTOP) in the middle of ADDs",
    async () => {
      const agent = await startNodeAgent(n);
      const calls = [p1, p2].map((pod, i) =>
        n.spawn("ADD", conf, n.env(`frozen${i}`, pod))
      );
      await sleep(30 + Math.random() * 100);
      agent.child.kill("SIGSTOP");
      await sleep(1500);
      for (const c of calls) {
        try {
          c.child.kill("SIGKILL");
        } catch {
          // It had its answer before the agent froze.
        }
      }
      const runs = await Promise.all(calls.map((c) => c.done));
      runs.forEach((r, i) => {
        if (r.signal === null) assertCniOutcome(r, `ADD frozen${i}`);
      });
      await agent.kill();
      // The next agent reconciles; the runtime DELs what it gave up on.
      await using _next = await startNodeAgent(n);
      for (const [i, pod] of [p1, p2].entries()) {
        if (runs[i]?.code === 0) continue;
        const del = await n.run("DEL", conf, n.env(`frozen${i}`, pod));
        assert.equal(del.code, 0, del.stdout);
      }
      await assertStateMatchesKernel(n);
      await cleanUp(n, {
        conf,
        pods: [p1, p2] as Netns[],
        ids: ["frozen0", "frozen1"],
      });
    },
  );
});
