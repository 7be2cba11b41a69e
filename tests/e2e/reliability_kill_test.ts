/**
 * Reliability, in bridge and in transparent mode: kill -9 of the dist
 * launcher at random moments during ADD and DEL (120 trials). Afterwards ADD
 * and DEL work again and, even before any GC, the state matches the kernel: a
 * DEL removes what an interrupted ADD of its attachment left. After GC with
 * the valid list the state parses and nothing leaked: no IP, veth, ebtables
 * rule, neighbour or route outside the state.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { assertStateMatchesKernel } from "../_support/azure_node.ts";
import { AzureNode, links } from "../../tools/testbed/mod.ts";

const TRIALS = 120;
const PARALLEL = 4;
const PODS = 16;

for (
  const [mode, subnet] of [
    ["bridge", "10.92.0.0/16"],
    ["transparent", "10.104.0.0/16"],
  ] as const
) {
  Deno.test(`azure-vnet in ${mode} mode survives kill -9 at random moments of ADD and DEL; GC leaves state == kernel`, async (t) => {
    await survivesKills(t, { mode, subnet });
  });
}

async function survivesKills(
  t: Deno.TestContext,
  spec: { mode: "bridge" | "transparent"; subnet: string },
): Promise<void> {
  requireRoot();
  await using n = await AzureNode.create(spec.subnet);
  const conf = n.conf(64, { mode: spec.mode });
  const pods = await n.pods(PODS);
  // The network exists before the trials (its creation is covered elsewhere).
  const first = await n.run("ADD", conf, n.env("kill0", pods[0]));
  assert.equal(first.code, 0, first.stdout);
  let killed = 0;
  let finished = 0;
  let trial = 0;
  async function worker(): Promise<void> {
    while (trial < TRIALS) {
      trial++;
      const i = Math.floor(Math.random() * PODS);
      const cmd = Math.random() < 0.5 ? "ADD" : "DEL";
      const { child, done } = n.spawn(cmd, conf, n.env(`kill${i}`, pods[i]));
      const delay = Math.floor(Math.random() * 150);
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already exited.
        }
      }, delay);
      const r = await done;
      clearTimeout(timer);
      if (r.signal === "SIGKILL") killed++;
      else {
        finished++;
        // A run that finished must have answered properly.
        assert.ok(r.json !== undefined || r.code === 0, r.stderr);
      }
    }
  }
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  assert.ok(killed >= 50, `killed ${killed} of ${TRIALS}`);

  await t.step(
    "ADD works again for every kept pod; DEL for the others",
    async () => {
      for (let i = 0; i < PODS; i++) {
        const cmd = i < PODS / 2 ? "ADD" : "DEL";
        const r = await n.run(cmd, conf, n.env(`kill${i}`, pods[i]));
        assert.equal(
          r.code,
          0,
          `${cmd} kill${i} after the trials: ${r.stdout}`,
        );
      }
    },
  );

  await t.step(
    "before any GC, those ADDs and DELs left state == kernel (#12)",
    async () => {
      const live = await assertStateMatchesKernel(n, { mode: spec.mode });
      assert.deepEqual(
        [...live.keys()].sort(),
        Array.from({ length: PODS / 2 }, (_, i) => `kill${i}/eth0`).sort(),
      );
    },
  );

  await t.step(
    "GC with the valid list: state parses and matches the kernel",
    async () => {
      const valid = Array.from(
        { length: PODS / 2 },
        (_, i) => ({ containerID: `kill${i}`, ifname: "eth0" }),
      );
      const gc = await n.run(
        "GC",
        { ...conf, cniVersion: "1.1.0", "cni.dev/valid-attachments": valid },
        { AZURE_VNET_STATE_DIR: n.dir, AZURE_VNET_LOG_DIR: n.dir },
      );
      assert.equal(gc.code, 0, gc.stdout);
      const live = await assertStateMatchesKernel(n, { mode: spec.mode });
      assert.deepEqual(
        [...live.keys()].sort(),
        valid.map((v) => `${v.containerID}/eth0`).sort(),
      );
      for (let i = PODS / 2; i < PODS; i++) {
        const pod = pods[i];
        assert.ok(pod !== undefined);
        const ls = await links(pod.name);
        assert.deepEqual(ls.map((l) => l.ifname), ["lo"], `pod ${i} is empty`);
      }
    },
  );
  assert.ok(finished + killed === TRIALS);
}
