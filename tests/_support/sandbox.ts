/**
 * A sandbox for one e2e test: `up` under a unique prefix and directory, the
 * test's body, then `down`, asserting that nothing of it is left.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  recordPath,
  sandboxDown,
  sandboxUp,
  type UpOptions,
  type UpResult,
} from "../../tools/sandbox/sandbox.ts";
import { listSandboxNetns } from "../../tools/sandbox/fabric.ts";
import { processAlive } from "../../tools/sandbox/_emulator.ts";
import type { SandboxRecord } from "../../tools/sandbox/record.ts";

/**
 * Brings a sandbox up with `options` (quiet unless they say otherwise)
 * under a random `vsb-` prefix and a fresh directory, runs `body`, and
 * brings it down whatever happened: `down` must report nothing left
 * behind, and no netns, emulator, agent or record of it may remain.
 *
 * @param options The `up` options (prefix and directory are chosen here).
 * @param body The test, given what `up` returned (`up.record.dir` is the
 *   sandbox directory).
 */
export async function withSandbox(
  options: Omit<UpOptions, "prefix" | "dir">,
  body: (up: UpResult) => Promise<void>,
): Promise<void> {
  const prefix = `vsb-${crypto.randomUUID().slice(0, 5)}`;
  const dir = await Deno.makeTempDir({ prefix: "vsb-e2e-" });
  await Deno.remove(dir);
  let rec: SandboxRecord | undefined;
  try {
    const up = await sandboxUp({ print: () => {}, ...options, prefix, dir });
    rec = up.record;
    await body(up);
  } finally {
    const lines = await sandboxDown(dir).catch((e) => [String(e)]);
    assert.match(lines.at(-1) ?? "", /nothing left behind/, lines.join("\n"));
  }
  assert.deepEqual(await listSandboxNetns(prefix), []);
  assert.ok(rec?.emulator === undefined || !processAlive(rec.emulator.pid));
  for (const a of rec?.agents ?? []) assert.ok(!processAlive(a.pid));
  await assert.rejects(Deno.stat(recordPath(dir)), { name: "NotFound" });
}
