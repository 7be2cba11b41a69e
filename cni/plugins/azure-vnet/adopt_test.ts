import assert from "node:assert/strict";
import { acnStatePresent, adoptAcnState, adoptIfPresent } from "./adopt.ts";
import { readState } from "./state.ts";

/** The Go azure-vnet v0.91's node (tests/testdata/acn-v0.91-node). */
const FIXTURE = new URL(
  "../../../tests/testdata/acn-v0.91-node/",
  import.meta.url,
);
const FILES = ["azure-vnet.json", "azure-vnet-ipam.json"];

async function goNode(): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const f of FILES) {
    await Deno.copyFile(new URL(f, FIXTURE), `${dir}/${f}`);
  }
  return dir;
}

Deno.test("adoptAcnState() converts both files, keeps the Go ones, and is done once", async () => {
  const dir = await goNode();
  try {
    assert.ok(await acnStatePresent(dir));
    // An older, different backup is kept beside the new one.
    await Deno.writeTextFile(`${dir}/azure-vnet.json.acn-backup`, "older");
    const out = await adoptAcnState(dir);
    assert.ok(out !== undefined && !out.dryRun);
    assert.deepEqual(out.backups, [
      `${dir}/azure-vnet.json.acn-backup.1`,
      `${dir}/azure-vnet-ipam.json.acn-backup`,
    ]);
    for (const [f, b] of FILES.map((f, i) => [f, out.backups[i]])) {
      assert.deepEqual(
        await Deno.readFile(b ?? ""),
        await Deno.readFile(new URL(f ?? "", FIXTURE)),
      );
    }
    assert.equal(
      await Deno.readTextFile(`${dir}/azure-vnet.json.acn-backup`),
      "older",
    );
    const state = await readState(dir);
    assert.equal(Object.keys(state.endpoints).length, 3);
    assert.ok(!(await acnStatePresent(dir)));
    assert.equal(await adoptAcnState(dir), undefined);
    await adoptIfPresent(dir);
    assert.deepEqual(await readState(dir), state);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("adoptAcnState() waits for a Go call's lock file, and not forever", async (t) => {
  for (
    const c of [{ name: "released", removeAfter: 300, waitMs: 5000 }, {
      name: "left by a dead process",
      removeAfter: undefined,
      waitMs: 300,
    }]
  ) {
    await t.step(c.name, async () => {
      const dir = await goNode();
      try {
        const lock = `${dir}/azure-vnet.json.lock`;
        await Deno.writeTextFile(lock, "4242");
        const timer = c.removeAfter === undefined
          ? undefined
          : setTimeout(() => Deno.removeSync(lock), c.removeAfter);
        const start = Date.now();
        const out = await adoptAcnState(dir, { goLockWaitMs: c.waitMs });
        clearTimeout(timer);
        assert.ok(Date.now() - start >= 250, `${Date.now() - start} ms`);
        assert.equal(out?.report.endpoints.length, 3);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
});
