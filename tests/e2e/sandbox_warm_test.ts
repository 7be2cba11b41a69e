/**
 * The warm pool in the sandbox (#16): one node whose NIC starts with 4
 * ipconfigs, 12 pods, the agent growing the NIC through the ARM emulator
 * while ARM answers 429 (Retry-After) and 500; every pod runs, its address
 * is an ipconfig in ARM, and the agent's metrics (read inside the node's
 * netns) count the requests.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import {
  recordPath,
  sandboxDown,
  sandboxMetrics,
  sandboxUp,
} from "../../tools/sandbox/sandbox.ts";
import { listSandboxNetns } from "../../tools/sandbox/fabric.ts";
import { processAlive, readArmNics } from "../../tools/sandbox/_emulator.ts";
import type { SandboxRecord } from "../../tools/sandbox/record.ts";

function sample(text: string, re: RegExp): number {
  return text.split("\n").filter((l) => re.test(l))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

Deno.test("sandbox up --warm 2:6 --arm-faults grows a 4-ipconfig NIC to 12 pods through ARM", async (t) => {
  requireRoot();
  const prefix = `vsb-${crypto.randomUUID().slice(0, 5)}`;
  const dir = await Deno.makeTempDir({ prefix: "vsb-warm-" });
  await Deno.remove(dir);
  const lines: string[] = [];
  let rec: SandboxRecord | undefined;
  try {
    const up = await sandboxUp({
      prefix,
      dir,
      nodes: 1,
      pods: 12,
      ipCount: 4,
      skipBuild: true,
      warm: { min: 2, max: 6 },
      armFaults: true,
      print: (l) => lines.push(l),
    });
    rec = up.record;
    const r = rec;
    await t.step(
      "all 12 pods run, each on an ipconfig the agent added",
      async () => {
        assert.equal(up.record.pods.length, 12);
        assert.equal(up.lines.at(-1), "PASS: 60/60 checks", lines.join("\n"));
        const nic = up.results.filter((c) => c.kind === "nic");
        assert.equal(nic.length, 12);
        assert.ok(nic.every((c) => c.ok));
        assert.ok(
          lines.some((l) => /^provisioned: .* has 4 ipconfigs$/.test(l)),
        );
        const nics = await readArmNics(r.emulator?.stateFile ?? "");
        const ips = nics[0]?.ips ?? [];
        assert.ok(ips.length >= 1 + 12 + 2, `NIC has ${ips.length} ipconfigs`);
        assert.ok(ips.length <= 1 + 12 + 6);
        assert.ok(lines.some((l) => /grew from 4 to \d+ ipconfigs/.test(l)));
      },
    );
    await t.step(
      "the agent's metrics show the faults and the updates",
      async () => {
        const m = await sandboxMetrics(r.dir);
        assert.equal(m.length, 1);
        const text = m[0]?.text ?? "";
        assert.equal(sample(text, /^azure_vnet_agent_up /), 1);
        assert.equal(
          sample(
            text,
            /^azure_vnet_cni_requests_total\{command="ADD",code="0"\}/,
          ),
          12,
        );
        assert.ok(
          sample(
            text,
            /^azure_vnet_arm_requests_total\{.*result="throttled"/,
          ) >= 1,
          text,
        );
        assert.ok(
          sample(
            text,
            /^azure_vnet_arm_requests_total\{.*result="server_error"/,
          ) >= 1,
          text,
        );
        assert.ok(
          sample(
            text,
            /^azure_vnet_arm_requests_total\{operation="update",result="ok"\}/,
          ) >= 2,
          text,
        );
      },
    );
  } finally {
    const down = await sandboxDown(dir).catch((e) => [String(e)]);
    assert.match(down.at(-1) ?? "", /nothing left behind/, down.join("\n"));
  }
  assert.deepEqual(await listSandboxNetns(prefix), []);
  for (const a of rec?.agents ?? []) assert.ok(!processAlive(a.pid));
  await assert.rejects(Deno.stat(recordPath(dir)), { name: "NotFound" });
});
