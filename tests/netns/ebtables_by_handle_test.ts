import { assert } from "../_support/assert.ts";
import { natRules, run, TestNetns } from "../_support/netns.ts";
import { requireRoot } from "../_support/privilege.ts";

const CHILD = new URL("./_ebtables_by_handle_child.ts", import.meta.url)
  .pathname;

Deno.test("Ebtables deletes a pod's rules by handle over its own socket, after a foreign rule shifted them, and falls back to ebtables-restore when the table moves under it", async () => {
  requireRoot();
  await using ns = await TestNetns.create();
  const out = JSON.parse(
    await run("ip", [
      "netns",
      "exec",
      ns.name,
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      CHILD,
    ]),
  );
  assert.deepEqual(out, {
    removed2: 2,
    afterShift: { tried: 1, deleted: 1 },
    removed3: 2,
    // Refused by the kernel (the generation moved): ebtables-restore did it.
    afterRace: { tried: 2, deleted: 1 },
  });
  const listed = await natRules(ns.name);
  const about = (ip: string) => listed.filter((l) => l.includes(`${ip} `));
  assert.equal(about("10.107.0.1").length, 2, listed.join("\n"));
  assert.deepEqual(
    about("10.107.0.2"),
    listed.filter((l) => l.includes("-i ETH0")),
    "only the twin on ETH0 is left",
  );
  assert.equal(about("10.107.0.2").length, 1, listed.join("\n"));
  assert.equal(about("10.107.0.3").length, 0, listed.join("\n"));
  assert.equal(about("10.107.0.4").length, 2, listed.join("\n"));
  assert.equal(about("10.107.9.9").length, 1, "the foreign rule stays");
  assert.equal(about("10.107.9.8").length, 1, "the racing rule stays");
  assert.equal(listed.length, 7);
});
