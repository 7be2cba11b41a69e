import { assert } from "../_support/assert.ts";
import { run, TestNetns } from "../_support/netns.ts";
import { requireRoot } from "../_support/privilege.ts";
import { NftGeneration, withNetns } from "@vnet/netlink";

/** Runs `ebtables-restore --noflush` with `input` in `ns`; its exit code. */
async function restore(ns: string, input: string): Promise<number> {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", ns, "ebtables-restore", "--noflush"],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  return (await child.status).code;
}

Deno.test("NftGeneration reads one namespace's nf_tables generation: one step per committed transaction, none for listings or failures", async () => {
  requireRoot();
  await using ns = await TestNetns.create();
  await using other = await TestNetns.create();
  using gen = withNetns(ns.path, () => NftGeneration.open());
  using elsewhere = withNetns(other.path, () => NftGeneration.open());
  const elsewhereBefore = elsewhere.read();
  const g0 = gen.read();
  await run("ip", ["netns", "exec", ns.name, "ebtables", "-t", "nat", "-L"]);
  assert.equal(gen.read(), g0, "a listing commits nothing");
  const rule = "PREROUTING -p IPv4 --ip-dst 10.106.0.5 -j ACCEPT";
  assert.equal(
    await restore(ns.name, `*nat\n-A ${rule}\n-A ${rule}\nCOMMIT\n`),
    0,
  );
  const g1 = gen.read();
  assert.equal(g1, g0 + 1, "one transaction, one step");
  const absent = "PREROUTING -p IPv4 --ip-dst 10.106.0.9 -j ACCEPT";
  assert.notEqual(
    await restore(ns.name, `*nat\n-D ${rule}\n-D ${absent}\nCOMMIT\n`),
    0,
  );
  assert.equal(gen.read(), g1, "a failed transaction changes nothing");
  await run("ip", [
    "netns",
    "exec",
    ns.name,
    "ebtables",
    "-t",
    "nat",
    "-D",
    ...rule.split(" "),
  ]);
  assert.equal(gen.read(), g1 + 1);
  assert.equal(
    elsewhere.read(),
    elsewhereBefore,
    "another namespace's table is its own",
  );
  gen.close();
  assert.throws(() => gen.read(), TypeError);
});
